"""The one place that reads and writes files (``reading``, ``writing``; ``paths`` for names the OS
refuses). Everything else imports from here."""

from accuracy.io.paths import existing, expand_user
from accuracy.io.reading import (
    MAX_CSV_FIELD,
    MAX_INT_DIGITS,
    MAX_JSON_DEPTH,
    csv_rows,
    finite_or_none,
    json_depth,
    loads_json,
    read_bytes,
    read_json,
    read_text,
    regular_file,
)
from accuracy.io.writing import (
    STALE_AFTER,
    OverwriteRefused,
    StagedWrite,
    current_umask,
    dumps_json,
    jsonable,
    remove_stale_staging,
    writable_folder,
    write_bytes_atomic,
    write_json_atomic,
)

__all__ = [
    "MAX_CSV_FIELD", "MAX_INT_DIGITS", "MAX_JSON_DEPTH", "STALE_AFTER", "OverwriteRefused", "StagedWrite", "csv_rows",
    "current_umask", "dumps_json", "existing", "expand_user", "finite_or_none", "json_depth", "jsonable", "loads_json",
    "read_bytes", "read_json", "read_text", "regular_file", "remove_stale_staging", "writable_folder",
    "write_bytes_atomic", "write_json_atomic",
]
