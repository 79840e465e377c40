"""Training: a shared config, the Lightning path (PyTorch models) and the Keras path (the baseline)."""
