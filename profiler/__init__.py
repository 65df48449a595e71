"""latkit.profiler."""
