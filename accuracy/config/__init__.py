"""Suite files: TOML parsed and validated with errors that name the file and the key."""

from accuracy.config.suite import Suite, TableReader, load_suite, discover_suites

__all__ = ["Suite", "TableReader", "load_suite", "discover_suites"]
