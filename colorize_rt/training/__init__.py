"""Training (PyTorch): data, the paper's loss, the training loop, the class prior (``colorize-prior``)."""
