"""Shared test configuration. Tiny models are built by the fixture registry in ``tests/fixtures/``
(one module per family), deterministically, and cached for the whole run."""

pytest_plugins = [
    "tests.fixtures.tiny_lm",
    # each helper module under tests/fixtures registers its session-scoped model builders here
    "tests.fixtures.onnx_graphs",
    "tests.fixtures.tiny_sd",
    "tests.fixtures.llm_servers",
    "tests.fixtures.mslite",
]
