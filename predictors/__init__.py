"""latkit.predictors."""
