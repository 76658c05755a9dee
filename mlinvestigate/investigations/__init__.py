"""Incident investigations: each is one function `fn(con, filters, ...) -> Result`, with its
SQL beside it and every value bound as a parameter. No UI imports here (the CLI and the TUI
render the Results).

* `filters`    — Filters, resolve_filters, the --where check, --by groupings, event kinds and
  the definition of a request line, shared by all of them.
* `summary`    — health per model version and service (verdict with its reason).
* `slow`       — latency distribution by a grouping, and the slowest requests.
* `latency`    — latency by input size bucket (or any column), optionally over time.
* `trace`      — every event of one request, with derived spans and missing hops.
* `loads`      — model loads and what followed them, ranked by impact.
* `errors`     — errors by category/type/version/service, with examples.
* `throughput` — received/processed/failed/dropped per interval, in-flight, saturation.
"""
