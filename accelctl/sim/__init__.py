"""The simulator: the fixture builder (a topology spec -> a fake sysfs tree, in ``fixture``) and
the device/firmware model that plays the kernel driver for the user-space driver core."""
