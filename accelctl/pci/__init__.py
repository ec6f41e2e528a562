"""Pure PCI facts: register layout and addresses. No I/O."""
