"""The suites here need a served model: `pytest suites/` does not collect them.

Run them with `accuracy run suites/llm-tiny/llm-tiny.toml` against a server, as
tests/test_llm_suite.py does with the tiny model it builds and serves.
"""

collect_ignore_glob = ["*.toml"]
