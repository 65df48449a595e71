"""latkit.devices."""
