"""LLM evaluation: OpenCompass runs against served models, and HumanEval scoring.

``llm.sandbox`` is the only place in the project that runs untrusted (model-generated) code;
``llm.humaneval`` reads HumanEval problems and samples, runs them there and computes pass@k.
"""
