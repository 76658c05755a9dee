"""`mlinv diagnose`: when did trouble start, and what most likely caused it.

1. One scan gives per-interval signals of every service × model (:mod:`.series`).
2. Change points in those signals are grouped into findings (:mod:`.onsets`).
3. One model-load query (`mlinv loads`) and, per finding, one contrast query over the window
   around its onset rank the candidate causes (:mod:`.candidates`); a drift comparison of the
   two sides runs only when nothing on the traffic itself explains the change.
4. Delayed labels, where logged, add accuracy by version as a lagging signal (:mod:`.labels`).

Everything heavy is aggregated in DuckDB; numpy works on a few hundred intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..errors import EmptyResult, UsageError
from ..investigations.filters import (
    Filters,
    clock_text,
    data_span,
    event_kinds,
    ms_text,
    pct_text,
)
from ..result import Result
from .candidates import analyse
from .causes import LOOKBACK, Analysis, Cause, Context, Load
from .onsets import Finding, detect, group, tolerance_intervals
from .series import Series, load_series

if TYPE_CHECKING:
    import duckdb

TARGET_INTERVALS = 240
MAX_INTERVALS = 360
NICE_STEPS_S = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
                43200, 86400)
AT_BEFORE = timedelta(hours=2)
AT_AFTER = timedelta(hours=1)
AT_NEAR = timedelta(minutes=30)
"""With --at, findings whose trouble is under way within this of the time are shown."""
MAX_FINDINGS = 8


@dataclass
class Diagnosis:
    filters: Filters
    series: Series
    findings: list[Finding]
    causes: dict[int, list[Cause]]
    analyses: dict[int, Analysis]
    loads: list[Load]
    loads_result: Result
    accuracy: Result | None
    at: datetime | None = None
    notes: list[str] = field(default_factory=list)
    hidden: int = 0
    """Findings left out (beyond MAX_FINDINGS, or far from --at)."""

    def time_of(self, index: int | None) -> datetime | None:
        return None if index is None else self.series.start_of(index)


def choose_step(start: datetime, end: datetime) -> timedelta:
    """The shortest round interval that cuts [start, end] into at most MAX_INTERVALS."""
    span = max((end - start).total_seconds(), 1.0)
    for seconds in NICE_STEPS_S:
        if span / seconds <= MAX_INTERVALS:
            return timedelta(seconds=seconds)
    return timedelta(seconds=math.ceil(span / TARGET_INTERVALS))


def run_diagnosis(con: duckdb.DuckDBPyConnection, filters: Filters, *,
                  at: datetime | None = None, step: timedelta | None = None) -> Diagnosis:
    """Find the onsets in the filtered events (around `at` when given) and rank their causes."""
    start, end = data_span(con, filters)
    if start is None or end is None:
        raise EmptyResult(f"no events match ({filters.describe()})")
    if at is not None:
        if not start <= at <= end + timedelta(minutes=1):
            raise UsageError(f"--at {at.isoformat()}Z is outside the events ({start.isoformat()}Z "
                             f"to {end.isoformat()}Z with these filters)")
        filters = replace(filters, since=max(filters.since or datetime.min, at - AT_BEFORE),
                          until=min(filters.until or datetime.max, at + AT_AFTER))
        start, end = max(start, filters.since or start), min(end, filters.until or end)
    step = step or choose_step(start, end)
    kinds = event_kinds(con)
    series = load_series(con, filters, kinds, step, start, end)
    findings = group(detect(series), series, tolerance_intervals(step))
    diagnosis = Diagnosis(filters, series, findings, {}, {}, [], Result("", [], []), None, at)
    findings = _chosen(diagnosis, findings)
    diagnosis.findings = findings
    if findings:
        diagnosis.loads, diagnosis.loads_result = _loads(con, filters, _loads_window(diagnosis))
    context = Context(con, filters, kinds, series, diagnosis.loads, _consumed(con))
    for finding in findings:
        causes, analysis = analyse(context, finding)
        diagnosis.causes[finding.number] = causes
        if analysis is not None:
            diagnosis.analyses[finding.number] = analysis
    from .labels import accuracy_by_version

    diagnosis.accuracy = accuracy_by_version(con, filters)
    if diagnosis.accuracy is not None:
        _add_accuracy(diagnosis)
    return diagnosis


def _add_accuracy(diagnosis: Diagnosis) -> None:
    """Deploy causes get the accuracy of the loaded version next to the others' (lagging)."""
    assert diagnosis.accuracy is not None
    records = diagnosis.accuracy.records()
    for finding in diagnosis.findings:
        for cause in diagnosis.causes.get(finding.number, []):
            if cause.kind != "deploy":
                continue
            same_model = [r for r in records if r["model_id"] == finding.model_id
                          and r["accuracy_pct"] is not None]
            new = next((r for r in same_model if r["model_version"] == cause.subject), None)
            others = [r for r in same_model if r["model_version"] != cause.subject]
            if new is None or not others:
                continue
            cause.detail += "; accuracy (lagging, delayed labels): " + ", ".join(
                f"{r['model_version']} {pct_text(r['accuracy_pct'])} ({r['labelled']:,} labels)"
                for r in [new, *others])


def _chosen(diagnosis: Diagnosis, findings: list[Finding]) -> list[Finding]:
    """Findings to explain: near --at when given, and at most MAX_FINDINGS (the strongest)."""
    chosen = findings
    if diagnosis.at is not None:
        at = diagnosis.at

        def distance(f: Finding) -> timedelta:
            onset = diagnosis.time_of(f.onset) or datetime.min
            recovery = diagnosis.time_of(f.recovery) or datetime.max
            if onset <= at < recovery:
                return timedelta(0)
            return onset - at if at < onset else at - recovery

        chosen = [f for f in findings if distance(f) <= AT_NEAR]
        if not chosen and findings:
            chosen = [min(findings, key=distance)]
            diagnosis.notes.append(f"nothing changed within {ms_text(AT_NEAR.total_seconds() * 1000)} "
                                   f"of {clock_text(at, with_date=True)}; the nearest finding is shown")
    if len(chosen) > MAX_FINDINGS:
        strongest = sorted(chosen, key=lambda f: -f.primary.z)[:MAX_FINDINGS]
        chosen = [f for f in chosen if f in strongest]
    if diagnosis.at is not None:
        # What changed closest to the moment asked about comes first.
        at = diagnosis.at
        chosen.sort(key=lambda f: abs(((diagnosis.time_of(f.onset) or datetime.min) - at)
                                      .total_seconds()) if f.onset is not None else math.inf)
        diagnosis.notes.append(f"--at {clock_text(at, with_date=True)}: findings under way within "
                               f"{ms_text(AT_NEAR.total_seconds() * 1000)} of it, the closest onset first")
    diagnosis.hidden = len(findings) - len(chosen)
    for number, finding in enumerate(chosen, 1):
        finding.number = number
    return chosen


def _loads_window(diagnosis: Diagnosis) -> tuple[datetime, datetime]:
    """From LOOKBACK before the first onset to a little after the last recovery: the loads that
    can be causes, and the rollbacks that ended the trouble."""
    series = diagnosis.series
    starts = [series.start_of(f.onset if f.onset is not None else 0) for f in diagnosis.findings]
    ends = [series.start_of(f.recovery if f.recovery is not None else series.size)
            for f in diagnosis.findings]
    margin = timedelta(minutes=10)
    return min(starts) - LOOKBACK - margin, max(ends) + margin


def _loads(con: duckdb.DuckDBPyConnection, filters: Filters, window: tuple[datetime, datetime]
           ) -> tuple[list[Load], Result]:
    from ..investigations.loads import loads

    # The model and version filters would hide the load of the version that replaced the one
    # asked about; the window keeps `loads` from comparing traffic around every load in the log.
    since = max(filters.since or datetime.min, window[0])
    until = min(filters.until or datetime.max, window[1])
    result = loads(con, replace(filters, version=None, where=None, since=since, until=until))
    records = result.records()
    found = [Load(r["loaded_at"], r["model_id"], r["version"], r["service"], r["outcome"],
                  r["verdict"], r["what_followed"]) for r in records if r["loaded_at"] is not None]
    return found, result


def _consumed(con: duckdb.DuckDBPyConnection) -> set[str]:
    from ..drift.discovery import consumed_keys

    return consumed_keys(con)


# --------------------------------------------------------------------------- the Result

COLUMNS = ["finding", "onset", "peak", "recovered", "model", "symptom", "top_cause", "score",
           "next"]
CAUSE_COLUMNS = ["rank", "kind", "cause", "score", "explains_pct", "evidence", "next"]


def symptom_text(diagnosis: Diagnosis, finding: Finding) -> str:
    series = diagnosis.series
    signal = finding.primary
    episode = signal.episode
    scopes = ", ".join(sorted({series.scopes[s.scope].label for s in finding.signals
                               if s.metric == signal.metric and s.category == signal.category}))
    fmt = _value_formatter(signal.metric)
    peak = f", peak {fmt(episode.peak_value)} at {clock_text(series.start_of(episode.peak))}"
    if finding.onset is None:
        return f"{signal.what()} {fmt(episode.worst)} until the recovery, then {fmt(episode.before)}" \
               f" ({scopes})"
    return f"{signal.what()} {fmt(episode.before)} → {fmt(episode.worst)}{peak} ({scopes})"


def _value_formatter(metric: str) -> Any:
    if metric == "confidence":
        return lambda v: "–" if v is None or math.isnan(v) else f"{v:.3f}"
    if metric == "traffic":
        return lambda v: "–" if v is None or math.isnan(v) else f"{v:.0f}/interval"
    return lambda v: "–" if v is None or math.isnan(v) else pct_text(100 * v)


def to_result(diagnosis: Diagnosis) -> Result:
    series = diagnosis.series
    rows = []
    sections: list[Result] = []
    notes: list[str] = []
    for finding in diagnosis.findings:
        causes = diagnosis.causes.get(finding.number, [])
        top = causes[0] if causes else None
        rows.append((
            finding.number, diagnosis.time_of(finding.onset), diagnosis.time_of(finding.peak),
            diagnosis.time_of(finding.recovery), finding.model_id or "–",
            symptom_text(diagnosis, finding),
            f"{top.kind}: {top.title}" if top else "no candidate found",
            top.score if top else None, top.next_command if top else _fallback_next(diagnosis, finding),
        ))
        notes.append(_sentence(diagnosis, finding, top))
        if causes:
            sections.append(causes_result(diagnosis, finding, causes))
            if causes[0].evidence is not None and causes[0].evidence.rows:
                evidence = causes[0].evidence
                sections.append(Result(f"Finding {finding.number}, evidence: {evidence.title}",
                                       evidence.columns, evidence.rows, units=evidence.units))
    if diagnosis.loads_result.rows:
        sections.append(_loads_section(diagnosis))
    if diagnosis.accuracy is not None:
        sections.append(diagnosis.accuracy)
    window = diagnosis.filters.describe()
    notes += diagnosis.notes
    if diagnosis.hidden:
        notes.append(f"{diagnosis.hidden} more findings not shown (narrow with --since/--until or --at)")
    notes.append(
        f"window: {window}; {series.size} intervals of {ms_text(series.step.total_seconds() * 1000)}; "
        "signals per service and model: error rate by category, share of successful requests "
        "slower than that scope's p95, mean confidence, request lines per interval")
    notes.append("onset: first interval of a change point where the signal got worse by a margin "
                 "(errors ≥ +1 point and ≥ 2×, slow share ≥ +2 points and ≥ 2×, confidence ≥ −0.05, "
                 "traffic ≤ ½); recovered: first interval back near the level before")
    notes.append("score: prior of the kind × (0.4 + 0.6 × share of the change the cause explains) "
                 "× timing (loads); see docs/diagnose.md")
    return Result(
        title=f"Diagnosis: {len(diagnosis.findings)} finding" + ("s" if len(diagnosis.findings) != 1 else ""),
        columns=COLUMNS, rows=rows, notes=notes, sections=sections,
    )


def causes_table(diagnosis: Diagnosis) -> Result:
    """Every candidate cause of every finding, one row each (for json and csv)."""
    rows = []
    for finding in diagnosis.findings:
        for rank, c in enumerate(diagnosis.causes.get(finding.number, []), 1):
            rows.append((finding.number, diagnosis.time_of(finding.onset), finding.model_id, rank,
                         c.kind, c.title, c.score,
                         None if c.explained is None else round(100 * c.explained, 1), c.at,
                         c.detail, c.next_command))
    return Result("Diagnosis: candidate causes", ["finding", "onset", "model", "rank", "kind", "cause",
                                                  "score", "explains_pct", "cause_at", "evidence", "next"],
                  rows, notes=to_result(diagnosis).notes, units={"explains_pct": "%"})


def causes_result(diagnosis: Diagnosis, finding: Finding, causes: list[Cause]) -> Result:
    rows = [(rank, c.kind, c.title, c.score,
             None if c.explained is None else round(100 * c.explained, 1), c.detail, c.next_command)
            for rank, c in enumerate(causes, 1)]
    onset = diagnosis.time_of(finding.onset)
    when = clock_text(onset) if onset else "before the window"
    return Result(f"Finding {finding.number} ({when}, {finding.model_id or 'no model'}): causes ranked",
                  CAUSE_COLUMNS, rows, units={"explains_pct": "%"})


def _sentence(diagnosis: Diagnosis, finding: Finding, top: Cause | None) -> str:
    onset = diagnosis.time_of(finding.onset)
    recovery = diagnosis.time_of(finding.recovery)
    when = f"from {clock_text(onset)}" if onset else "already at the window start"
    until = f" until {clock_text(recovery)}" if recovery else " (still going at the end)"
    what = symptom_text(diagnosis, finding)
    if top is None:
        hint = ""
        if diagnosis.filters.service or diagnosis.filters.where:
            # The hop that logs versions and input sizes may be the one filtered out.
            hint = " (--service/--where left out the other services' lines, which may carry the " \
                   "versions and input sizes to explain it)"
        return f"{finding.number}. {when}{until}: {what}; no candidate cause stood out{hint}"
    share = f", explains {pct_text(100 * top.explained)}" if top.explained is not None else ""
    return (f"{finding.number}. {when}{until}: {what}. Most likely: {top.title}{share}. "
            f"Next: {top.next_command}")


def _fallback_next(diagnosis: Diagnosis, finding: Finding) -> str:
    onset = diagnosis.time_of(finding.onset) or diagnosis.series.start_of(0)
    model = f" --model {finding.model_id}" if finding.model_id else ""
    return (f"mlinv errors{model} --since {onset.isoformat(timespec='seconds')}Z "
            f"--until {(onset + diagnosis.series.step * 15).isoformat(timespec='seconds')}Z")


def _loads_section(diagnosis: Diagnosis) -> Result:
    result = diagnosis.loads_result
    keep = ["loaded_at", "model_id", "version", "service", "outcome", "error_pct_before",
            "error_pct_after", "p99_before", "p99_after", "verdict", "what_followed"]
    index = [result.columns.index(c) for c in keep]
    rows = sorted((tuple(r[i] for i in index) for r in result.rows), key=lambda r: r[0])
    return Result("Model loads in the window", keep, rows,
                  units={k: v for k, v in result.units.items() if k in keep})


def diagnose(con: duckdb.DuckDBPyConnection, filters: Filters, *, at: datetime | None = None,
             step: timedelta | None = None) -> Result:
    """The diagnosis as a Result (findings, then each finding's ranked causes)."""
    return to_result(run_diagnosis(con, filters, at=at, step=step))


__all__ = ["Diagnosis", "diagnose", "run_diagnosis", "to_result"]
