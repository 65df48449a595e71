"""latkit.search."""
