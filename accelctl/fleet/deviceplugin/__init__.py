"""The kubelet device plugin (v1beta1): server.DevicePlugin serves, health.HealthTracker judges,
allocation.preferred_allocation picks by the pairwise matrix. api.proto is the wire contract;
api_pb2*.py are generated from it (the command is in api.proto) and committed."""
