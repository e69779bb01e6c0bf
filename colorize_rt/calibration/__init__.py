"""INT8 post-training quantization: image-folder calibration, Q/DQ ONNX, accuracy gate."""
