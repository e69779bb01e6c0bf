"""Runtime: torch-free colorization through ONNX Runtime (CPU/CUDA/TensorRT EP) or TensorRT engines."""
