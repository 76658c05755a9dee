"""What each panel of `mlinv tui` asks the core, and the small view objects the widgets draw.

Every number on screen comes from the same function the CLI command uses — there is no SQL
here (the only SQL in the TUI is the trivial counts in `read_clock` and the retention DELETE
in feed.py):

==============  ==================================================  ==============================
panel           core call                                           equivalent command
==============  ==================================================  ==============================
latency         ``latency(cur, f, by="service", every=…)``          mlinv latency --by service --every
throughput      ``throughput(cur, f, every=…)``                     mlinv throughput --every
errors          ``errors(cur, f, by=["error_category"], every=…)``  mlinv errors --every …
drift           ``drift(cur, f, choice, Options())``                mlinv drift --reference/--current
versions        ``summary(cur, f)``                                 mlinv summary
slow or failed  ``slow(cur, f + PROBLEM_WHERE, …).sections[0]``     mlinv slow --where "…"
load markers    ``loads(cur, f)``                                   mlinv loads
trace screen    ``trace(cur, request_id)``                          mlinv trace ID
==============  ==================================================  ==============================

The functions here run in worker threads with their own cursor; the `*_view` functions that
turn a `Result` into a view are pure, so they are tested without a screen.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..errors import EmptyResult, MLInvestigateError
from ..investigations.filters import Filters
from ..result import Result
from ..sanitize import clean

if TYPE_CHECKING:
    import duckdb

    from ..engines import DuckDBEngine
    from .feed import FeedStatus

WINDOWS: dict[str, timedelta | None] = {
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "all": None,
}
"""The window choices, in key order (1, 2, 3, 4). None: everything the database holds."""

BUCKETS = 60
"""Time buckets per window (5 m → 5 s, 1 h → 1 min): enough points for a 40–120 column chart."""

SLOW_MS = 500.0
"""A request line slower than this is listed as slow (summary's default slow threshold)."""

PROBLEM_WHERE = f"latency_ms > {SLOW_MS:g} OR error_category IS NOT NULL"
"""The slow-or-failed condition given to `slow()` for the live list (a constant of ours,
the same text a user could pass to `mlinv slow --where`)."""

RECENT_ROWS = 12
DRIFT_ROWS = 8


# ------------------------------------------------------------------------------ view and time


@dataclass(frozen=True)
class View:
    """What the user chose to look at."""

    window: str = "5m"
    paused_end: datetime | None = None
    """The window end while paused (scrubbing moves it); None: live, the end follows the
    newest event."""
    model: str | None = None
    version: str | None = None
    service: str | None = None
    latency_key: tuple[str | None, str | None] | None = None
    """(service, model_id) whose p50/p95/p99 the latency chart draws; None: the busiest."""

    @property
    def paused(self) -> bool:
        return self.paused_end is not None

    @property
    def span(self) -> timedelta | None:
        return WINDOWS[self.window]

    def describe_filter(self) -> str | None:
        parts = [p for p in (self.model, self.version, self.service) if p]
        return " ".join(clean(p) for p in parts) if parts else None


@dataclass(frozen=True)
class Clock:
    """What the database holds right now (read at the start of a refresh)."""

    first: datetime | None
    newest: datetime | None
    events: int
    rejects: int
    feed: FeedStatus | None = None
    """The ingestion status read just *before* the counts: every line it says was committed
    is visible to the queries of this refresh."""


@dataclass(frozen=True)
class Frame:
    """One refresh: the time range, bucket size and filters every panel of it uses, so the
    charts line up."""

    start: datetime
    end: datetime
    """Exclusive: the newest event plus a microsecond when live."""
    every: timedelta
    filters: Filters
    generation: int
    """Bumped on every change of view; results of an older generation are dropped."""
    clock: Clock
    whole: bool = False
    """The "all" window: everything the database holds."""

    def x(self, moment: datetime) -> float:
        """Where `moment` falls on the time axis, 0 (start) … 1 (end)."""
        span = (self.end - self.start).total_seconds()
        return (moment - self.start).total_seconds() / span if span > 0 else 1.0

    def bucket_x(self, bucket_start: datetime) -> float:
        return self.x(bucket_start + self.every / 2)

    def seconds_in(self, bucket_start: datetime) -> float:
        """The part of a bucket inside the frame (the first and last are usually cut)."""
        low = max(bucket_start, self.start)
        high = min(bucket_start + self.every, self.end)
        return max((high - low).total_seconds(), 1e-3)

    @property
    def time_filters(self) -> Filters:
        """The frame's time range without the model/version/service choice."""
        return Filters(since=self.filters.since, until=self.filters.until, limit=self.filters.limit)


def read_clock(cur: duckdb.DuckDBPyConnection, feed: FeedStatus | None) -> Clock:
    from ..investigations.filters import data_span

    first, newest = data_span(cur, Filters())
    events = cur.execute("SELECT count(*) FROM events").fetchone()
    rejects = cur.execute("SELECT count(*) FROM rejects").fetchone()
    return Clock(first, newest, int(events[0]) if events else 0, int(rejects[0]) if rejects else 0,
                 feed)


def make_frame(view: View, clock: Clock, generation: int) -> Frame | None:
    """The refresh's time range: the window ending at the newest event (or the paused end)."""
    from ..investigations.filters import default_every

    if clock.newest is None or clock.first is None:
        return None
    newest_end = clock.newest + timedelta(microseconds=1)
    end = newest_end if view.paused_end is None else min(view.paused_end, newest_end)
    span = view.span
    start = clock.first if span is None else end - span
    if span is None and end - start < timedelta(seconds=BUCKETS):
        start = end - timedelta(seconds=BUCKETS)
    every = default_every(start, end, rows=BUCKETS)
    filters = Filters(since=start, until=end, model=view.model, version=view.version,
                      service=view.service, limit=RECENT_ROWS)
    return Frame(start, end, every, filters, generation, clock, whole=span is None)


def scrub_end(view: View, clock: Clock, steps: int) -> datetime | None:
    """The paused window end after moving `steps` quarter-windows (clamped to the data)."""
    if clock.newest is None or clock.first is None or view.span is None:
        return view.paused_end
    newest_end = clock.newest + timedelta(microseconds=1)
    end = view.paused_end or newest_end
    end += view.span / 4 * steps
    earliest = min(clock.first + view.span, newest_end)
    return max(earliest, min(end, newest_end))


# ------------------------------------------------------------------------------ the signals


Point = tuple[float, float]
"""(x on the time axis 0…1, value)."""


@dataclass(frozen=True)
class LatencyView:
    keys: tuple[tuple[str | None, str | None], ...]
    """The (service, model_id) pairs with latencies in the frame, busiest first."""
    focus: tuple[str | None, str | None] | None
    series: dict[str, tuple[Point, ...]]
    """p50 / p95 / p99 of the focused pair per bucket, in ms."""
    current: dict[str, float | None]
    """The last bucket's percentiles of the focused pair."""
    others: tuple[tuple[str, float | None], ...] = ()
    """The other pairs' last p99, for the legend."""
    requests: int = 0


def key_label(key: tuple[str | None, str | None] | None) -> str:
    if key is None:
        return "–"
    service, model = key
    return " ".join(clean(str(p)) for p in (model, service) if p) or "?"


def latency_view(result: Result, frame: Frame,
                 focus: tuple[str | None, str | None] | None) -> LatencyView:
    rows = result.records()
    totals: dict[tuple[str | None, str | None], int] = {}
    for r in rows:
        key = (r["service"], r["model_id"])
        totals[key] = totals.get(key, 0) + int(r["requests"])
    keys = tuple(sorted(totals, key=lambda k: (-totals[k], str(k))))
    chosen = focus if focus in totals else (keys[0] if keys else None)
    series: dict[str, list[Point]] = {"p50": [], "p95": [], "p99": []}
    last: dict[tuple[str | None, str | None], dict[str, Any]] = {}
    for r in rows:
        key = (r["service"], r["model_id"])
        last[key] = r
        if key == chosen:
            x = frame.bucket_x(r["interval_start"])
            for name in series:
                if r[name] is not None:
                    series[name].append((x, float(r[name])))
    current = {name: (last[chosen][name] if chosen in last else None) for name in series}
    others = tuple((key_label(k), last[k]["p99"]) for k in keys if k != chosen)
    return LatencyView(keys, chosen, {k: tuple(v) for k, v in series.items()}, current, others,
                       totals.get(chosen, 0) if chosen else 0)


@dataclass(frozen=True)
class ThroughputView:
    series: dict[str, tuple[Point, ...]]
    """received / processed / failed per second, per bucket."""
    current: dict[str, float]
    """The last bucket's rates."""
    totals: dict[str, int]
    """Counts over the whole frame: received, processed, failed, dropped."""


def throughput_view(result: Result, frame: Frame) -> ThroughputView:
    names = ("received", "processed", "failed")
    series: dict[str, list[Point]] = {name: [] for name in names}
    totals = {"received": 0, "processed": 0, "failed": 0, "dropped": 0}
    current = {name: 0.0 for name in names}
    for r in result.records():
        seconds = frame.seconds_in(r["interval_start"])
        x = frame.bucket_x(r["interval_start"])
        for name in names:
            rate = (r[name] or 0) / seconds
            series[name].append((x, rate))
            current[name] = rate
        for name in totals:
            totals[name] += int(r[name] or 0)
    return ThroughputView({k: tuple(v) for k, v in series.items()}, current, totals)


@dataclass(frozen=True)
class CategoryStrip:
    name: str
    points: tuple[Point, ...]
    """Errors per bucket."""
    total: int
    rate_pct: float | None
    """The latest bucket's rate (errors / request lines in that bucket)."""


@dataclass(frozen=True)
class ErrorsView:
    strips: tuple[CategoryStrip, ...]
    """Categories by errors in the frame, most first."""


def errors_view(result: Result, frame: Frame) -> ErrorsView:
    points: dict[str, list[Point]] = {}
    totals: dict[str, int] = {}
    rates: dict[str, float | None] = {}
    for r in result.records():
        name = clean(str(r["error_category"]))
        points.setdefault(name, []).append((frame.bucket_x(r["interval_start"]), float(r["errors"])))
        totals[name] = totals.get(name, 0) + int(r["errors"])
        rates[name] = r["rate_pct"]
    order = sorted(totals, key=lambda n: (-totals[n], n))
    return ErrorsView(tuple(CategoryStrip(n, tuple(points[n]), totals[n], rates[n]) for n in order))


@dataclass(frozen=True)
class Signals:
    latency: LatencyView
    throughput: ThroughputView
    errors: ErrorsView


def signals(cur: duckdb.DuckDBPyConnection, frame: Frame,
            focus: tuple[str | None, str | None] | None, names: EventNames | None = None) -> Signals:
    """The three time-series panels, from the investigations the CLI runs with --every."""
    from ..investigations.errors import errors
    from ..investigations.latency import latency
    from ..investigations.throughput import throughput

    engine = _one_engine(cur, names)
    lat = latency(engine, frame.filters, by="service", every=frame.every)
    flow = throughput(engine, frame.filters, every=frame.every)
    errs = errors(engine, frame.filters, by=["error_category"], every=frame.every)
    return Signals(latency_view(lat, frame, focus), throughput_view(flow, frame),
                   errors_view(errs, frame))


class EventNames:
    """The event names seen so far, read incrementally: each refresh scans only the rows that
    arrived since the last one (rowid follows arrival), 2 ms instead of 30 ms for the whole
    column of 2M events. Names whose rows were pruned stay: classifying a name that no row has
    changes no answer. Shared by the refresh workers, hence the lock."""

    def __init__(self) -> None:
        self._names: set[str] = set()
        self._after = -1
        self._lock = threading.Lock()

    def read(self, cur: duckdb.DuckDBPyConnection) -> list[str]:
        from ..investigations.filters import MAX_EVENT_NAMES

        with self._lock:
            row = cur.execute("SELECT max(rowid) FROM events").fetchone()
            newest = row[0] if row and row[0] is not None else -1
            # Past the bound the names are free text (event_kinds gives up): stop collecting.
            if newest > self._after and len(self._names) <= MAX_EVENT_NAMES:
                fetched = cur.execute(
                    "SELECT DISTINCT event FROM events "
                    "WHERE rowid > $after AND rowid <= $newest AND event IS NOT NULL LIMIT $n",
                    {"after": self._after, "newest": newest, "n": MAX_EVENT_NAMES + 1},
                ).fetchall()
                self._names.update(name for (name,) in fetched)
                self._after = newest
            return sorted(self._names)[: MAX_EVENT_NAMES + 1]


def _one_engine(cur: duckdb.DuckDBPyConnection, names: EventNames | None) -> DuckDBEngine:
    """One engine for the investigations of one refresh, so the event names are read once
    (incrementally when the app keeps an EventNames)."""
    from ..engines import DuckDBEngine

    engine = DuckDBEngine(cur)
    if names is not None:
        engine.memo["event_names"] = names.read(cur)
    return engine


# ------------------------------------------------------------------------------ loads


@dataclass(frozen=True)
class LoadMark:
    at: datetime
    label: str
    verdict: str
    """ok / warn / critical / fail, from `loads()`."""


def loads_view(result: Result) -> tuple[LoadMark, ...]:
    marks = []
    for r in result.records():
        at = r["loaded_at"]
        if at is None:
            continue
        label = " ".join(clean(str(p)) for p in (r["model_id"], r["version"]) if p)
        marks.append(LoadMark(at, f"{label} {at:%H:%M:%S} {r['outcome']}", str(r["verdict"])))
    return tuple(sorted(marks, key=lambda m: m.at))


def load_marks(cur: duckdb.DuckDBPyConnection, frame: Frame) -> tuple[LoadMark, ...]:
    from ..investigations.loads import loads

    return loads_view(loads(cur, frame.filters))


# ------------------------------------------------------------------------------ tables


@dataclass(frozen=True)
class VersionRow:
    model: str | None
    version: str | None
    service: str | None
    requests: int
    p99: float | None
    error_pct: float | None
    verdict: str
    reason: str

    @property
    def key(self) -> str:
        return "\x1f".join(p or "" for p in (self.model, self.version, self.service))


@dataclass(frozen=True)
class RequestRow:
    ts: datetime
    request_id: str | None
    service: str | None
    model: str | None
    version: str | None
    latency_ms: float | None
    status_code: int | None
    error: str | None


@dataclass(frozen=True)
class Tables:
    versions: tuple[VersionRow, ...]
    recent: tuple[RequestRow, ...]


def _text(value: Any) -> str | None:
    return None if value is None else clean(str(value))


def versions_view(result: Result) -> tuple[VersionRow, ...]:
    return tuple(
        VersionRow(_text(r["model_id"]), _text(r["model_version"]), _text(r["service"]),
                   int(r["requests"]), r["p99"], r["error_pct"], str(r["verdict"]),
                   clean(str(r["reason"] or "")))
        for r in result.records()
    )


def recent_view(result: Result) -> tuple[RequestRow, ...]:
    rows = [
        RequestRow(r["ts"], _text(r["request_id"]), _text(r["service"]), _text(r["model_id"]),
                   _text(r["model_version"]), r["latency_ms"], r["status_code"], _text(r["error"]))
        for r in result.records()
    ]
    return tuple(sorted(rows, key=lambda r: r.ts, reverse=True))


def tables(cur: duckdb.DuckDBPyConnection, frame: Frame, names: EventNames | None = None) -> Tables:
    """The version table (all versions and services in the window: it is also the chooser,
    so it ignores the version/service filter) and the slow-or-failed requests (filtered)."""
    from ..investigations.slow import slow
    from ..investigations.summary import summary

    engine = _one_engine(cur, names)
    versions = summary(engine, frame.time_filters)
    problems = slow(engine, replace(frame.filters, where=PROBLEM_WHERE, limit=RECENT_ROWS),
                    threshold_ms=SLOW_MS)
    recent = problems.sections[0] if problems.sections else Result("", [], [])
    return Tables(versions_view(versions), recent_view(recent) if recent.rows else ())


# ------------------------------------------------------------------------------ drift


@dataclass(frozen=True)
class DriftRow:
    feature: str
    psi: float | None
    verdict: str
    reason: str


@dataclass(frozen=True)
class DriftView:
    rows: tuple[DriftRow, ...] = ()
    reference: str = ""
    """What the current window is compared with, in words."""
    message: str | None = None
    """Shown instead of rows (not enough data yet, or why drift could not be computed)."""
    changed: int = 0
    features: int = 0


NOT_ENOUGH = "drift: not enough data yet"
NOT_ENOUGH_WHY = ("the reference is the first quarter of the data before the window; "
                  "it fills as history arrives (or give --baseline NAME)")


def drift_view(result: Result, reference: str) -> DriftView:
    rows = tuple(DriftRow(clean(str(r["feature"])), r["psi"], str(r["verdict"]),
                          clean(str(r["reason"] or ""))) for r in result.records())
    changed = sum(1 for r in rows if r.verdict in ("moderate", "significant"))
    return DriftView(rows[:DRIFT_ROWS], reference, changed=changed, features=len(rows))


def drift_panel(cur: duckdb.DuckDBPyConnection, frame: Frame, baseline: str | None = None) -> DriftView:
    """PSI of the top features in the frame against the reference — the one place the drift
    panel is wired to the core (`mlinvestigate.drift`).

    Reference: a saved baseline (`--baseline NAME`), else the first quarter of the data in
    the database (what `mlinv drift` uses by default), cut off where the window starts so the
    two never overlap. With the "all" window: the first quarter against the last quarter."""
    from ..drift.compare import drift
    from ..drift.measures import Options
    from ..drift.windows import Window, WindowChoice, choose_windows

    scope = replace(frame.filters, since=None, until=None)
    current = Window("current", frame.start, frame.end)
    try:
        if baseline is not None:
            from ..drift.baseline import load_baseline

            saved, _ = load_baseline(cur, baseline)
            options = Options(binning=saved.binning, edges=saved.edges)
            choice = WindowChoice(Window("reference"), current, False)
            result = drift(cur, scope, choice, options, baseline=saved, baseline_name=baseline)
            return drift_view(result, f"baseline {clean(baseline)}")
        default = choose_windows(cur, scope)
        if frame.whole:
            choice = default
        else:
            ref_end = min(default.reference.end or frame.start, frame.start)
            if default.reference.start is None or ref_end <= default.reference.start:
                return DriftView(message=NOT_ENOUGH)
            choice = WindowChoice(Window("reference", default.reference.start, ref_end), current, True)
        result = drift(cur, scope, choice, Options())
        return drift_view(result, _span_text(choice.reference.start, choice.reference.end))
    except EmptyResult:
        return DriftView(message=NOT_ENOUGH)
    except MLInvestigateError as exc:
        return DriftView(message=f"drift: {clean(str(exc))}")


def _span_text(start: datetime | None, end: datetime | None) -> str:
    """"00:00:00–01:00:00" (dates only when the two days differ)."""
    if start is None or end is None:
        return "the reference window"
    if start.date() == end.date():
        return f"{start:%H:%M:%S}–{end:%H:%M:%S}"
    return f"{start:%m-%d %H:%M}–{end:%m-%d %H:%M}"


# ------------------------------------------------------------------------------ trace


def run_trace(cur: duckdb.DuckDBPyConnection, request_id: str) -> Result:
    """The trace screen's content: `mlinv trace`'s function, unchanged."""
    from ..investigations.trace import trace

    return trace(cur, request_id)




ALERT_BANNER_MAX = 3
"""Firing alerts named in the banner; more are counted."""


def firing_alerts(cur: duckdb.DuckDBPyConnection, frame: Frame) -> tuple[str, ...]:
    """The shipped alert rules (`mlinv check`'s defaults) replayed over the frame: one short
    text per alert firing at its end. Drift rules are left to the drift panel: their scan reads
    every record's JSON and would hold the refresh back."""
    from ..alerts.check import check
    from ..alerts.rules import load_rules

    rules = [rule for rule in load_rules() if "psi(" not in rule.expr]
    if not rules:
        return ()
    try:
        result = check(cur, frame.time_filters, rules)
    except EmptyResult:
        return ()
    firing = [row for row in result.records() if row["state"] == "firing"]
    # Group names come from the logs: cleaned of terminal escapes like every logged value.
    texts = [clean(f"▲ {row['rule']} [{row['group']}] since {_clock(row['firing_from'])}, "
                   f"worst {row['worst']}") for row in firing[:ALERT_BANNER_MAX]]
    if len(firing) > ALERT_BANNER_MAX:
        texts.append(f"+{len(firing) - ALERT_BANNER_MAX} more (mlinv check)")
    return tuple(texts)


def _clock(value: Any) -> str:
    if isinstance(value, datetime):
        return f"{value:%H:%M}"
    text = str(value or "")
    return text[11:16] if len(text) >= 16 and text[10] == "T" else text
