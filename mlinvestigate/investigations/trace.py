"""`mlinv trace REQUEST_ID`: every event of one request, across services and files, in time
order, with a text waterfall, and the hops that should be there but are not.

One scan in the usual case: the events whose request_id starts with the text (a second one on
trace_id when none does), only the columns shown, and a streaming LIMIT so a too-short prefix
stops early instead of reading everything.
A full id is also a prefix of itself, so an exact id needs no second query; an exact match wins
over longer ids that share the prefix.

Spans are derived per hop (a service, or a span_id when the service logs one): from its start
line to its finishing line, or from a finishing line's latency (ts − latency_ms … ts). They nest
by parent_span_id (W3C/OTel style, read from attrs) when logged, else by time containment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from .. import request_index
from ..engines import DUCKDB, SPARK, Engine, as_engine, sql_for
from ..errors import UsageError
from ..result import Result
from .filters import classify_event_name, clock_text, ms_text

if TYPE_CHECKING:
    import duckdb

MAX_EVENTS = 2000
"""Events read for one trace (a request has a handful; more means the prefix is too short)."""

BAR_WIDTH = 40

TRACE_SQL = """
SELECT ts, event, level, service, request_id, trace_id, span_id,
       coalesce(json_extract_string(attrs, '$.parent_span_id'),
                json_extract_string(attrs, '$.parentSpanId'),
                json_extract_string(attrs, '$.parent_id')) AS parent_span_id,
       model_id, model_version, status, latency_ms, input_size, status_code,
       error_type, error_category, error_message, source, line, record
FROM events
WHERE starts_with({id_column}, $prefix)
  {time_range}
LIMIT $max_events
"""
"""{id_column} is request_id, or trace_id when no request_id matches. One column per query:
an OR of the two stops DuckDB from filtering inside the scan, and then every row's attrs is
read (4× slower). {time_range} is the request index's time span of the ids (empty for a scan),
which the zone maps of ts turn into a read of a few row groups."""

SPARK_TRACE_SQL = """
SELECT ts, event, level, service, request_id, trace_id, span_id,
       coalesce(get_json_object(attrs, '$.parent_span_id'),
                get_json_object(attrs, '$.parentSpanId'),
                get_json_object(attrs, '$.parent_id')) AS parent_span_id,
       model_id, model_version, status, latency_ms, input_size, status_code,
       error_type, error_category, error_message, source, line, record
FROM events
WHERE startswith({id_column}, :prefix)
  {time_range}
LIMIT :max_events
"""

SQL = {DUCKDB: TRACE_SQL, SPARK: SPARK_TRACE_SQL}

@dataclass
class _Event:
    ts: datetime
    event: str | None
    level: str | None
    service: str | None
    request_id: str | None
    trace_id: str | None
    span_id: str | None
    parent_span_id: str | None
    model_id: str | None
    model_version: str | None
    status: str | None
    latency_ms: float | None
    input_size: int | None
    status_code: int | None
    error_type: str | None
    error_category: str | None
    error_message: str | None
    source: str | None
    line: int | None
    record: int | None

    @property
    def kind(self) -> str | None:
        return classify_event_name(self.event or "")

    @property
    def finishes(self) -> bool:
        return self.latency_ms is not None or self.kind == "finish"

    @property
    def error(self) -> str | None:
        text = ": ".join(p for p in (self.error_type, self.error_message) if p)
        return text or (self.error_category if self.error_category else None)


@dataclass
class _Span:
    service: str | None
    span_id: str | None
    events: list[_Event] = field(default_factory=list)
    parent: _Span | None = None
    depth: int = 0

    @property
    def start(self) -> datetime:
        times = [e.ts for e in self.events]
        times += [e.ts - timedelta(milliseconds=e.latency_ms) for e in self.events
                  if e.latency_ms is not None and math.isfinite(e.latency_ms)]
        return min(times)

    @property
    def end(self) -> datetime | None:
        """None while no line finished the span (in flight, dropped, or lost)."""
        finishing = [e.ts for e in self.events if e.finishes]
        return max(finishing) if finishing else None

    @property
    def parent_span_id(self) -> str | None:
        return next((e.parent_span_id for e in self.events if e.parent_span_id), None)

    @property
    def failed(self) -> _Event | None:
        return next((e for e in self.events if e.error_category or e.error_type), None)

    @property
    def name(self) -> str:
        operations = {(e.event or "").rsplit("_", 1)[0] for e in self.events if e.event}
        operation = operations.pop() if len(operations) == 1 else "span"
        return f"{self.service or '?'} {operation}"


def trace(con: duckdb.DuckDBPyConnection | Engine, request_id: str) -> Result:
    """All events of the request (or trace) whose id is or starts with `request_id`."""
    engine = as_engine(con)
    text = request_id.strip()
    if not text:
        raise UsageError("empty request id")
    sql = sql_for(SQL, engine.name)
    fetched = _request_lines(engine, sql, text)
    if not fetched:
        fetched = engine.execute(sql.format(id_column="trace_id", time_range=""),
                                 {"prefix": text.lower(), "max_events": MAX_EVENTS}).fetchall()
    events = [_Event(*row) for row in fetched]
    chosen, label = _choose(events, text)
    if label.startswith("trace ") and len(request_ids := {e.request_id for e in chosen
                                                           if e.request_id}) == 1:
        # Found by trace id: some lines of its request may log only the request id.
        more = _request_lines(engine, sql, request_ids.pop())
        seen = {(e.source, e.line, e.record) for e in chosen}
        chosen += [e for e in map(lambda row: _Event(*row), more)
                   if (e.source, e.line, e.record) not in seen]
    if not chosen:
        return Result(title=f"Trace {text}", columns=_COLUMNS, rows=[])
    # Fix: a line logged without any time (none to infer either) crashed the ordering; such
    # lines are listed after the others, in file order, outside the waterfall.
    timed = sorted((e for e in chosen if e.ts is not None), key=lambda e: (e.ts, e.source or "", e.line or 0))
    untimed = sorted((e for e in chosen if e.ts is None), key=lambda e: (e.source or "", e.line or 0))
    chosen = timed + untimed
    spans = _spans(timed)
    services = sorted({e.service for e in chosen if e.service})
    summary = (f"{label}: {len(chosen)} events from {len(services)} service(s) ({', '.join(services)})"
               if services else f"{label}: {len(chosen)} events (no service logged)")
    rows = []
    notes = []
    if timed:
        t0 = min([timed[0].ts, *(s.start for s in spans)])
        t1 = max([timed[-1].ts, *(s.end for s in spans if s.end is not None)])
        duration_ms = (t1 - t0).total_seconds() * 1000.0
        for e in timed:
            if e.latency_ms is not None and math.isfinite(e.latency_ms):
                bar = _bar(e.ts - timedelta(milliseconds=e.latency_ms), e.ts, t0, duration_ms)
            else:
                bar = _bar(e.ts, None, t0, duration_ms)
            rows.append(_row(e, _offset_ms(e.ts, t0), bar))
        notes += [
            f"{summary} between {clock_text(timed[0].ts, with_date=True)} and "
            f"{clock_text(timed[-1].ts)}; trace duration {ms_text(duration_ms)}",
            "waterfall: █ a line's own latency (ts − latency_ms … ts), ▏ a line without one; "
            f"full width = {ms_text(duration_ms)}",
        ]
    else:
        t0, duration_ms = None, 0.0
        notes.append(summary)
    rows += [_row(e, None, "") for e in untimed]
    if untimed:
        notes.append(f"{len(untimed)} event(s) have no time at all: listed last, in file order, "
                     "outside the waterfall")
    if len(events) >= MAX_EVENTS:
        notes.append(f"only the first {MAX_EVENTS} matching events were read")
    notes.extend(_missing_hops(chosen, spans))
    return Result(
        title=f"Trace {label}",
        columns=_COLUMNS,
        rows=rows,
        notes=notes,
        units={"offset_ms": "ms", "latency_ms": "ms"},
        sections=[_span_table(spans, t0, duration_ms)] if t0 is not None else [],
    )


def _row(e: _Event, offset_ms: float | None, bar: str) -> tuple[object, ...]:
    return (
        e.ts, offset_ms, e.service, e.event, e.model_version,
        e.status or (str(e.status_code) if e.status_code is not None else None),
        e.latency_ms, e.error, f"{e.source}:{e.line}" if e.source else None, bar,
    )


def _request_lines(engine: Engine, sql: str, prefix: str) -> list[tuple[object, ...]]:
    """The events whose request_id starts with `prefix`: within the time span the request index
    gives when the database has a usable one, else by a scan of every request_id."""
    params: dict[str, object] = {"prefix": prefix, "max_events": MAX_EVENTS}
    time_range = ""
    span = _index_span(engine, prefix)
    if span is not None and span.usable:
        if span.entries == 0:
            return []
        time_range = "AND ts BETWEEN $first_ts AND $last_ts"
        params.update(first_ts=span.first_ts, last_ts=span.last_ts)
    return engine.execute(sql.format(id_column="request_id", time_range=time_range), params).fetchall()


def _index_span(engine: Engine, prefix: str) -> request_index.Span | None:
    """None where there is no index: another engine, a Parquet store, or a connection to a
    database that was never migrated (the functions also take bare DuckDB connections)."""
    if engine.name != DUCKDB or getattr(engine, "partitioned", False):
        return None
    from ..duckdb_core import duckdb

    try:
        return request_index.lookup(engine, prefix)
    except duckdb.CatalogException:
        return None


_COLUMNS = ["ts", "offset_ms", "service", "event", "model_version", "status", "latency_ms",
            "error", "source_line", "waterfall"]


def _choose(events: list[_Event], text: str) -> tuple[list[_Event], str]:
    """The events of the one request (or trace) `text` names; ambiguity is a UsageError."""
    exact = [e for e in events if e.request_id == text]
    if exact:
        return exact, f"request {text}"
    exact_trace = [e for e in events if e.trace_id and e.trace_id == text.lower()]
    if exact_trace:
        return exact_trace, f"trace {text.lower()}"
    request_ids = sorted({e.request_id for e in events
                          if e.request_id and e.request_id.startswith(text)})
    trace_ids = sorted({e.trace_id for e in events
                        if e.trace_id and e.trace_id.startswith(text.lower())})
    if len(request_ids) == 1:
        return [e for e in events if e.request_id == request_ids[0]], f"request {request_ids[0]}"
    if not request_ids and len(trace_ids) == 1:
        return [e for e in events if e.trace_id == trace_ids[0]], f"trace {trace_ids[0]}"
    candidates = request_ids or trace_ids
    if not candidates:
        return [], text
    more = " …" if len(candidates) > 10 or len(events) >= MAX_EVENTS else ""
    at_least = "at least " if len(events) >= MAX_EVENTS else ""
    raise UsageError(
        f"{text!r} matches {at_least}{len(candidates)} requests: "
        f"{', '.join(candidates[:10])}{more}",
        hint="give more of the id",
    )


def _offset_ms(moment: datetime, t0: datetime) -> float:
    return (moment - t0).total_seconds() * 1000.0


def _bar(start: datetime, end: datetime | None, t0: datetime, duration_ms: float) -> str:
    """Spaces up to the start, then █ to the end (▏ for an instant, ▶… for an open span)."""
    if duration_ms <= 0:
        return "█" if end is not None else "▏"
    scale = BAR_WIDTH / duration_ms
    left = min(BAR_WIDTH - 1, max(0, math.floor(_offset_ms(start, t0) * scale)))
    if end is None:
        return " " * left + "▏"
    right = min(BAR_WIDTH, max(left + 1, math.ceil(_offset_ms(end, t0) * scale)))
    return " " * left + "█" * (right - left)


def _spans(events: list[_Event]) -> list[_Span]:
    """One span per hop: per (service, span_id); lines of a service that log no span_id join
    the service's only span when it has exactly one."""
    span_ids_by_service: dict[str | None, set[str]] = {}
    for e in events:
        if e.span_id:
            span_ids_by_service.setdefault(e.service, set()).add(e.span_id)
    spans: dict[tuple[str | None, str | None], _Span] = {}
    for e in events:
        span_id = e.span_id
        if span_id is None and len(span_ids_by_service.get(e.service, ())) == 1:
            span_id = next(iter(span_ids_by_service[e.service]))
        key = (e.service, span_id)
        spans.setdefault(key, _Span(e.service, span_id)).events.append(e)
    ordered = sorted(spans.values(), key=lambda s: s.start)
    by_id = {s.span_id: s for s in ordered if s.span_id}
    for span in ordered:
        parent_id = span.parent_span_id
        if parent_id and parent_id in by_id and by_id[parent_id] is not span:
            span.parent = by_id[parent_id]
        elif not parent_id:
            span.parent = _container(span, ordered)
    for span in ordered:
        depth, parent, seen = 0, span.parent, {id(span)}
        while parent is not None and id(parent) not in seen:
            seen.add(id(parent))
            depth += 1
            parent = parent.parent
        span.depth = depth
    return _tree_order(ordered)


def _container(span: _Span, spans: list[_Span]) -> _Span | None:
    """The shortest other-service span whose time contains this one (no tracing ids)."""
    best: _Span | None = None
    for other in spans:
        if other is span or other.service == span.service or other.end is None:
            continue
        end = span.end or span.start
        if other.start <= span.start and end <= other.end and (
            best is None or (other.end - other.start) < (best.end - best.start)  # type: ignore[operator]
        ):
            best = other
    return best


def _tree_order(spans: list[_Span]) -> list[_Span]:
    ordered: list[_Span] = []

    def visit(span: _Span) -> None:
        ordered.append(span)
        for child in spans:
            if child.parent is span and child not in ordered:
                visit(child)

    for span in spans:
        if span.parent is None or span.parent not in spans:
            visit(span)
    ordered.extend(s for s in spans if s not in ordered)  # a parent cycle, shown flat
    return ordered


def _span_table(spans: list[_Span], t0: datetime, duration_ms: float) -> Result:
    rows = []
    for span in spans:
        end = span.end
        failed = span.failed
        if failed is not None:
            status = f"error: {failed.error_category or failed.error_type}"
        elif end is None:
            status = "unfinished"
        else:
            status = "ok"
        rows.append((
            "  " * span.depth + span.name,
            span.span_id,
            _offset_ms(span.start, t0),
            _offset_ms(end, span.start) if end is not None else None,
            status,
            _bar(span.start, end, t0, duration_ms),
        ))
    return Result(
        title="Spans (waterfall)",
        columns=["span", "span_id", "start_ms", "duration_ms", "status", "waterfall"],
        rows=rows,
        units={"start_ms": "ms", "duration_ms": "ms"},
    )


def _missing_hops(events: list[_Event], spans: list[_Span]) -> list[str]:
    """Hops that should be there and are not, and hops that outlived their caller."""
    notes: list[str] = []
    services = {e.service for e in events if e.service}
    span_ids = {s.span_id for s in spans if s.span_id}
    for span in spans:
        if span.end is None and any(e.kind == "start" for e in span.events):
            first = span.events[0]
            notes.append(
                f"missing hop: {span.service} {first.event} at {clock_text(first.ts)} has no "
                "finishing line (still in flight when the log ends, dropped, or its line is lost)"
            )
        parent_id = span.parent_span_id
        if parent_id and parent_id not in span_ids:
            notes.append(f"missing hop: {span.service} span {span.span_id} names parent span "
                         f"{parent_id}, which no line in the logs has")
        parent = span.parent
        if parent is not None and parent.end is not None and span.end is not None \
                and span.end > parent.end:
            late = _offset_ms(span.end, parent.end)
            notes.append(f"{span.service} finished {ms_text(late)} after {parent.service} had "
                         "already answered (the caller gave up before the call finished)")
    # A request names a model but no line carries what only the model's server logs.
    model_lines = [e for e in events if e.model_version or e.input_size is not None]
    if any(e.model_id for e in events) and not model_lines:
        failed = next((e for e in events if e.error_category), None)
        answer = ""
        if failed is not None:
            code = f"{failed.status_code} " if failed.status_code is not None else ""
            took = f" after {ms_text(failed.latency_ms)}" if failed.latency_ms else ""
            answer = f"; {failed.service} answered {code}{failed.error or ''}{took}"
        notes.append(
            f"missing hop: no model line for this request (none with a model_version or "
            f"input_size; only {', '.join(sorted(services))} logged it){answer} — the model call "
            f"never finished, or its line was lost"
        )
    return notes

