"""Suite files: TOML parsed and validated with errors that name the file and the key."""

from accuracy.config.suite import Suite, TableReader, discover_suites, load_suite

__all__ = ["Suite", "TableReader", "discover_suites", "load_suite"]
