"""``accuracy convert``: ONNX models to MINDIR with the real MindSpore Lite converter and the guide's
per-model ``.ini`` configs (``converter_onnx2mindir.sh`` as one command), cached by content hash."""

from accuracy.convert.mindir import ConvertJob, ConvertResult, convert_models, convert_one

__all__ = ["ConvertJob", "ConvertResult", "convert_models", "convert_one"]
