"""``onnxruntime``: ONNX models on ONNX Runtime, fp32, CPU provider unless ``providers`` says otherwise."""
