"""The human summary printed on stderr after an ingest."""

from __future__ import annotations

from ..sanitize import clean
from .pipeline import IngestReport

_FLAG_TEXT = {
    "unparsed_latency": "latency values that are not numbers (kept in attrs)",
    "negative_latency": "negative latencies (kept)",
    "absurd_latency": "latencies over 1 hour (kept)",
    "ts_inferred": "records without their own timestamp "
                   "(time from the line prefix or the previous record; ts_inferred)",
    "ts_missing": "records with no time at all (ts is NULL)",
}

_STATUS_TEXT = {
    "unchanged": "unchanged since the last ingest, nothing added",
    "duplicate": "same content as an earlier stdin ingest, nothing added",
    "resumed": "resumed where the last ingest stopped",
    "renamed": "already read under its earlier name (same file, renamed), nothing added",
    "rotated": "replaced or truncated since the last ingest, read again as new",
}


def describe(report: IngestReport, rejects_hint: str = "see them with: mlinv rejects") -> list[str]:
    rate = report.lines / report.seconds if report.seconds > 0 else 0.0
    files = len(report.sources)
    lines = [
        f"mlinv: {report.lines:,} lines from {files} source{'s' if files != 1 else ''} → "
        f"{report.events:,} events, {report.rejects:,} rejects, {report.blank_lines:,} blank "
        f"in {report.seconds:.2f} s ({rate:,.0f} lines/s)"
    ]
    for source in report.sources:
        if source.status in _STATUS_TEXT:
            lines.append(f"  {clean(source.source)}: {_STATUS_TEXT[source.status]}")
    for name, count in sorted(report.flags.items()):
        lines.append(f"  flagged: {count:,} {_FLAG_TEXT.get(name, name)}")
    if report.rejects:
        lines.append(f"  {rejects_hint}")
    return lines
