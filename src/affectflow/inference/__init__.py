"""Running trained models: the model pipeline, predict, extract (feature files) and evaluate."""
