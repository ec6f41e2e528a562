"""Benchmarks a user can run (`accelctl bench`): the driver core against the device simulator
(driver_core), with the platform's own floors measured in the same run (floors)."""
