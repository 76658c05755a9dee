"""DuckDB for the code that only runs SQL.

`import duckdb` (DuckDB 2.0) loads, beside the compiled engine, about 5,000 lines of
pure-Python relation and expression API and the package metadata: 150–200 ms of every
command's start (`python -X importtime -c "import duckdb"`), against 15–40 ms for the engine
module `_duckdb` alone. Queries need only what the engine module defines (connect, execute,
fetch*, the exception classes: the very objects `duckdb` re-exports), so they import this.

Code that hands Arrow data to DuckDB or uses relations (ingest, the Parquet store) imports
`duckdb` itself, which completes the same classes. A DuckDB packaging without a top-level
`_duckdb` module gets the `duckdb` package.
"""

from __future__ import annotations

try:
    import _duckdb as duckdb
except ImportError:  # pragma: no cover - DuckDB releases that package the engine elsewhere
    import duckdb  # type: ignore[no-redef]

__all__ = ["duckdb"]
