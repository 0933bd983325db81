"""Register step: writes the model version into the registry."""
