"""``onnxruntime-fp16``: fp16 device numerics emulated on the CPU, fp32 inputs and outputs."""
