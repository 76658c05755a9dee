"""What every investigation returns: named columns, rows, and sentences that explain them.

The CLI renders a Result as a table, JSON, CSV or markdown; the TUI renders the same object in
its panels. Column names are snake_case and are the JSON keys.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    title: str
    """A short heading, e.g. "Latency by model_version"."""
    columns: list[str]
    """snake_case column names; also the JSON keys."""
    rows: list[tuple[Any, ...]]
    notes: list[str] = field(default_factory=list)
    """Sentences shown under the table (verdicts, definitions such as 'percentiles are exact')."""
    units: dict[str, str] = field(default_factory=dict)
    """Optional unit per column ("ms", "%", "/s") shown in table headers only."""
    sections: list[Result] = field(default_factory=list)
    """Further tables shown after this one (e.g. the slowest requests after the distribution)."""

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [row[i] for row in self.rows]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def from_cursor(
        cls, title: str, description: Sequence[Any], rows: list[tuple[Any, ...]], **kwargs: Any
    ) -> Result:
        return cls(title=title, columns=[d[0] for d in description], rows=rows, **kwargs)
