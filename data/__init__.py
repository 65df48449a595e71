"""latkit.data."""
