"""latkit.supernet."""
