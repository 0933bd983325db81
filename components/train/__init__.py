"""Training step: fits the model and exports ONNX plus a torch checkpoint."""
