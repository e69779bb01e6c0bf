"""Training (PyTorch): data, the paper's loss, the training loop and evaluation."""
