"""accuracy: accuracy validation for inference moved from GPUs to another runtime.

The layers, as data flows: ``config`` (suite files) -> ``backends`` (model files become
callable sessions) -> ``pipelines`` (run a pipeline with a backend per model) -> ``compare``
(pure metric functions) -> ``bisect`` / ``localize`` (searches) -> ``results`` -> ``report``.
LLM work lives in ``llm`` (OpenCompass runs, the HumanEval sandbox).
"""

__version__ = "0.1.0"
