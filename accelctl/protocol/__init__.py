"""The protocol between the user-space driver and whoever plays the kernel driver and firmware
(the simulator today, a kernel driver tomorrow): formats, opcodes, message layout (abi), and the
memory fence both sides of a shared ring need (fence). Both accelctl.driver and accelctl.sim import
this package; it imports neither."""
