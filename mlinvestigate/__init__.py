"""mlinvestigate: incident investigation for ML model-serving logs.

Ingests structured JSON prediction logs into an embedded DuckDB database and answers the
questions an incident needs. Importing the package is cheap: heavy libraries (duckdb, numpy,
pyarrow, textual) are imported by the modules that use them.
"""

__version__ = "0.1.0"
