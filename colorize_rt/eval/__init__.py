"""The paper's evaluation (torch-free scoring, ONNX and torch predictors, the accuracy gate, ``colorize-eval``)."""
