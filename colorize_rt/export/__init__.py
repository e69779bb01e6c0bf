"""Export: ONNX graphs with the decode fused in, FP16 conversion, TensorRT engines, Triton repos."""
