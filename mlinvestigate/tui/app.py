"""`mlinv tui`: the four signals (latency, throughput, errors, drift) of one deployment, live.

Threads, and why:

* the UI thread only draws and handles keys; it never queries;
* one ingestion worker (`MonitorApp._ingest`) feeds stdin / followed files into the database
  through its own cursor (feed.py);
* each refresh first reads the clock (newest event, counts: a few ms), then runs the panel
  groups in their own exclusive thread workers, all for the same `Frame` so the charts line up.
  A group is not started again while it runs (slow queries are not stacked); a change of view
  starts it at once, cancelling the stale worker and interrupting its DuckDB query.

Every number comes from the core function the CLI command uses (see panels.py).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from rich.markup import escape
from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import Worker, WorkerState, get_current_worker

from ..errors import MLInvestigateError
from ..investigations.filters import ms_text
from ..output import format_column
from ..result import Result
from ..sanitize import clean
from . import panels
from .feed import Feeder, FeedStatus, Retention
from .messages import ClockRead, FeedProgress, PanelData, PanelFailed, TraceReady
from .pacing import ForegroundGate, PacedCursor
from .panels import WINDOWS, Clock, EventNames, Frame, View
from .widgets import (
    AlertBanner,
    DriftBars,
    ErrorStrips,
    Legend,
    LineChart,
    RequestTable,
    StatusBar,
    VersionTable,
    latency_legend,
    latency_series,
    rate_text,
    throughput_legend,
    throughput_series,
)

if TYPE_CHECKING:
    import duckdb


@dataclass
class GroupState:
    """Scheduling of one group of panels."""

    min_interval: float
    """Seconds between starts, at least."""
    duty: float = 0.5
    """At most this share of the time running: a group whose queries took 2 s waits 2 s / duty
    before it starts again, so slow queries never crowd out ingestion."""
    worker: Worker[None] | None = None
    running: bool = False
    started: float = 0.0
    duration: float = 0.0
    done_for: tuple[Any, ...] | None = None
    """The frame key of the last run (nothing new to show when it has not changed)."""
    shown_generation: int = -1

    def due(self, now: float, slower: float = 1.0) -> bool:
        # 5 % slack: a timer tick that comes a hair early must not skip a whole interval.
        wait = max(self.min_interval, self.duration / self.duty)
        return now - self.started >= 0.95 * slower * wait


GROUP_SCHEDULE = {"signals": (0.7, 0.65), "tables": (0.7, 0.65), "loads": (5.0, 0.1), "alerts": (30.0, 0.05),
                  "drift": (60.0, 0.05)}
"""(seconds between refreshes, share of time running at most) per group: the signals and tables
at least once a second when their queries are fast; load markers, alert rules (one replay of the
shipped rules over the window) and drift (a heavier scan that reads the records' JSON) much less
often. Measured at 20k lines/s on 2 cores (BENCHMARKS.md §3): alerts every 10 s and drift every
20 s took ~30 % of a core from ingestion (p95 lag 2.4 s). Every 0.8 s (which the 0.25 s ticks
made 1.0 s) gave 0.97 refreshes/s; every 0.7 s with 0.1 s ticks, 1.23/s with the same lag
in 300 s (p95 1.9 s). Over 30 minutes: 1.07-1.10/s, but a lag p95 of 4.8-5.8 s against 2.5 s
for the old schedule in an earlier session; whether the faster refresh costs that lag or the
machine was slower is not settled (BENCHMARKS.md §3)."""

BACKGROUND = frozenset({"loads", "alerts", "drift"})
"""Groups started only when the signals and tables are not running."""

TICKS_PER_INTERVAL = 10
"""Ticks per refresh interval. A group starts on the first tick after it is due: with 4 ticks
(every 0.25 s) the signals, due 0.76 s after they started, waited for the tick at 1.0 s, and
the screen refreshed 0.97 times a second instead of 1.25."""
BEHIND_SLOWDOWN = 2.0
"""Refresh intervals are this much longer while ingestion is behind the stream."""


@dataclass
class RefreshMetrics:
    """Measured on screen, for the status bar and bench/tui_keepup.py."""

    refreshes: int = 0
    """Signal-panel refreshes shown."""
    lags: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    """Seconds between reading the newest line shown and showing it (0 when nothing newer was
    read), one per refresh while lines arrive."""
    last_lag: float | None = None
    durations: dict[str, deque[float]] = field(default_factory=dict)

    def note_duration(self, group: str, seconds: float) -> None:
        self.durations.setdefault(group, deque(maxlen=1000)).append(seconds)


HELP_TEXT = """\
[b]mlinv tui[/b] — the four signals of a model-serving deployment, live

[b]Keys[/b]
  1 2 3 4       window: 5 min, 15 min, 1 h, all
  p  space      pause / resume (paused, the window stops following new events)
  ← →  [ ]      move the window end back / forward by a quarter window (pauses)
  enter         on a version row: filter every panel to it (again: clear)
                on a request row: open its trace (esc: back)
  esc           clear the version/service filter
  m             latency chart: next service + model
  /             find a request by id (a unique prefix is enough)
  tab           move between the two tables
  ?             this help                q   quit

[b]Panels[/b] — each runs the same function as the command under it
  Latency       p50 p95 p99 per interval, log scale, one service + model
                  mlinv latency --by service --every …
  Throughput    received / processed / failed per second     mlinv throughput --every …
  Errors        errors per interval by category    mlinv errors --by error_category --every …
  Drift         PSI of the top features: green none (< 0.1), yellow moderate, red significant
                  (≥ 0.25), against {reference}     mlinv drift
  Versions      requests, p99, error rate, verdict per version and service     mlinv summary
                  (always every version: it is the chooser; ▶ marks the filter)
  Slow/failed   the slowest request lines over 500 ms or with an error in the window
                  mlinv slow --where "latency_ms > 500 or error_category is not null"
  loads ▲       model loads under the charts (green ok, yellow warn, red critical or failed)
                  mlinv loads

[b]Time[/b]    The window ends at the newest event (event time, UTC), not at the wall clock.
        lag: how long ago the newest line on screen was read, while newer lines wait.
[b]Memory[/b]  {retention}
[b]Alerts[/b]  a red banner above the panels names the alerts firing at the window's end:
        the shipped rules of `mlinv check` (drift rules aside), replayed every 30 s.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "Close"),
    ]

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(self.text, id="help-text")


class SearchScreen(ModalScreen[str | None]):
    """`/`: a request id, or a unique prefix of one."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="search-box"):
            yield Static("Find a request: its id or a unique prefix (enter to open, esc to cancel)")
            yield Input(placeholder="req-3c8b…", id="search-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


TRACE_COLUMNS = ("offset_ms", "service", "event", "model_version", "status", "latency_ms",
                 "waterfall", "error")


class TraceScreen(Screen[None]):
    """Every event of one request: `mlinv trace`'s Result, as a table and its notes."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,backspace", "back", "Back")]

    def __init__(self, result: Result) -> None:
        super().__init__()
        self.result = result

    def compose(self) -> ComposeResult:
        yield Static(Text(clean(self.result.title), style="bold"), id="trace-title")
        yield DataTable(id="trace-events", cursor_type="row", zebra_stripes=True)
        yield Static(id="trace-notes")
        yield DataTable(id="trace-spans", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        events = self.query_one("#trace-events", DataTable)
        _fill_table(events, self.result, TRACE_COLUMNS)
        notes = Text("\n").join(Text("• " + clean(note)) for note in self.result.notes)
        self.query_one("#trace-notes", Static).update(notes)
        spans = self.query_one("#trace-spans", DataTable)
        if self.result.sections:
            section = self.result.sections[0]
            spans.border_title = clean(section.title)
            _fill_table(spans, section, tuple(section.columns))
        else:
            spans.display = False
        events.focus()

    def action_back(self) -> None:
        self.app.pop_screen()


HEADERS = {"offset_ms": "+ms", "latency_ms": "latency ms", "model_version": "version",
           "start_ms": "start ms", "duration_ms": "duration ms"}


def _header(column: str, unit: str | None) -> str:
    if column in HEADERS:
        return HEADERS[column]
    return f"{column} ({unit})" if unit else column


def _fill_table(table: DataTable[Any], result: Result, columns: tuple[str, ...]) -> None:
    """A Result's columns as text, formatted like the CLI table (output.format_column)."""
    chosen = [c for c in columns if c in result.columns]
    texts = {c: format_column(result.column(c), c) for c in chosen}
    numeric = {c for c in chosen if any(isinstance(v, int | float) for v in result.column(c))}
    headers = [_header(c, result.units.get(c)) for c in chosen]
    table.add_columns(*headers)
    for i in range(len(result.rows)):
        table.add_row(*(Text(clean(texts[c][i]), justify="right" if c in numeric else "left")
                        for c in chosen))


class MainScreen(Screen[None]):
    """The dashboard: four signal panels, the version table, the slow-or-failed requests."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "window('5m')", "5m"),
        Binding("2", "window('15m')", "15m"),
        Binding("3", "window('1h')", "1h"),
        Binding("4", "window('all')", "all"),
        Binding("p,space", "pause", "Pause"),
        # Priority: the focused table would otherwise take ← → for horizontal scrolling.
        Binding("left,left_square_bracket", "scrub(-1)", "◀", show=False, priority=True),
        Binding("right,right_square_bracket", "scrub(1)", "▶", show=False, priority=True),
        Binding("m", "next_series", "Series", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self, view: View, *, refresh_interval: float | None, drift: bool = True) -> None:
        super().__init__()
        self.view = view
        self.refresh_interval = refresh_interval
        self.generation = 0
        self.clock: Clock | None = None
        self.frame: Frame | None = None
        """The frame of the newest clock reading: what the next refresh will show."""
        self.shown_frame: Frame | None = None
        """The frame the charts show now."""
        self.feed: FeedStatus | None = None
        scale = refresh_interval or 1.0
        self.groups = {name: GroupState(interval * scale, duty)
                       for name, (interval, duty) in GROUP_SCHEDULE.items() if drift or name != "drift"}
        self.clock_worker: Worker[None] | None = None
        self.clock_pending = True
        self._cursors: dict[str, duckdb.DuckDBPyConnection] = {}
        self.gate = ForegroundGate(behind=self._ingest_behind)
        """Closed while the signals or tables run, or ingestion is behind: the background
        groups' statements wait."""
        self._waited: dict[str, float] = {}
        self.marks: tuple[panels.LoadMark, ...] = ()
        self.latency_keys: tuple[tuple[str | None, str | None], ...] = ()
        """The (service, model) pairs of the latest latency result, for `m`."""
        self.metrics = RefreshMetrics()
        self._bars: dict[str, Text] = {}
        self._last_failure: str | None = None
        self._ended_noted = False
        self._error_noted: str | None = None

    def _ingest_behind(self) -> bool:
        """Asked from background workers: the feeder's own status, not the last one posted."""
        feed = self.monitor.feed_status()
        return feed is not None and feed.behind

    @property
    def monitor(self) -> MonitorApp:
        app = self.app
        assert isinstance(app, MonitorApp)
        return app

    # --------------------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        yield Static(id="topbar")
        yield AlertBanner(id="alerts")
        yield Static(id="waiting")
        with Grid(id="panels"):
            with Vertical(id="latency-panel", classes="panel"):
                yield Legend(id="latency-legend")
                yield LineChart(log_scale=True, formatter=_ms_label, id="latency-chart")
            with Vertical(id="throughput-panel", classes="panel"):
                yield Legend(id="throughput-legend")
                yield LineChart(formatter=rate_text, id="throughput-chart")
            with Vertical(id="errors-panel", classes="panel"):
                yield ErrorStrips(id="errors")
            with Vertical(id="drift-panel", classes="panel"):
                yield DriftBars(id="drift")
            with Vertical(id="versions-panel", classes="panel"):
                yield VersionTable(id="versions")
            with Vertical(id="recent-panel", classes="panel"):
                yield RequestTable(id="recent")
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        titles = {
            "#latency-panel": "Latency p50 p95 p99 · log",
            "#throughput-panel": "Throughput /s",
            "#errors-panel": "Errors by category",
            "#drift-panel": "Drift PSI",
            "#versions-panel": "Versions · enter: filter",
            "#recent-panel": "Slow or failed · enter: trace",
        }
        for selector, title in titles.items():
            self.query_one(selector).border_title = title
        self.query_one("#recent", RequestTable).focus()
        if "drift" not in self.groups:
            self.query_one("#drift", DriftBars).show(panels.DriftView(message="drift: off (--no-drift)"))
        self._show_waiting()
        self._draw_bars()
        if self.refresh_interval:
            # Look several times per interval: a group starts as soon as it is due, instead
            # of waiting for the next whole interval (which halves the refresh rate).
            self.set_interval(self.refresh_interval / TICKS_PER_INTERVAL, self.tick)
        self.tick()

    # --------------------------------------------------------------------------- scheduling

    def tick(self) -> None:
        """Read the clock when something may have changed and a group is due; the clock
        starts the panels."""
        if self.clock_worker is not None and self.clock_worker.state in (WorkerState.PENDING,
                                                                          WorkerState.RUNNING):
            return
        if self.clock is not None and self.frame is not None and not self._any_due(time.monotonic()):
            return  # a clock read costs a query and a repaint: only when something will start
        if not self.clock_pending and self.clock is not None and self.frame is not None:
            # Nothing new arrived and the view is the same: only groups that were not due last
            # time need another look (their frame is already known).
            self._start_due_groups(self.frame)
            return
        self.clock_pending = False
        self.clock_worker = self._read_clock(self.monitor.feed_status())

    @work(thread=True, exclusive=True, exit_on_error=False, group="clock")
    def _read_clock(self, feed: FeedStatus | None) -> None:
        cur = self.monitor.cursor()
        try:
            clock = panels.read_clock(cur, feed)
        except Exception as exc:  # shown; the next tick tries again
            self.post_message(PanelFailed("clock", self.generation, _error_text(exc)))
            return
        finally:
            cur.close()
        if not get_current_worker().is_cancelled:
            self.post_message(ClockRead(clock))

    def on_clock_read(self, message: ClockRead) -> None:
        self.clock = message.clock
        self.frame = panels.make_frame(self.view, message.clock, self.generation)
        self._show_waiting()
        self._draw_bars()
        if self.frame is not None:
            self._start_due_groups(self.frame)

    def _start_due_groups(self, frame: Frame) -> None:
        now = time.monotonic()
        key = (frame.generation, frame.end, frame.start, frame.clock.events)
        feed = self.monitor.feed_status()
        # Ingestion behind: refresh less often and leave it the CPU; the screen is useless if
        # what it shows falls further and further behind the stream.
        slower = BEHIND_SLOWDOWN if feed is not None and feed.behind else 1.0
        for name, state in self.groups.items():
            if state.done_for == key:
                continue  # nothing new for this group
            new_view = state.done_for is None or state.done_for[0] != frame.generation
            if not new_view and (state.running or not state.due(now, slower)):
                continue  # the next tick looks again
            if name in BACKGROUND and self._foreground_running():
                continue  # after the signals and tables: they are what the user waits for
            self._start_group(name, state, frame, key)

    def _any_due(self, now: float) -> bool:
        slower = BEHIND_SLOWDOWN if self.feed is not None and self.feed.behind else 1.0
        return any(state.done_for is None or state.done_for[0] != self.generation
                   or (not state.running and state.due(now, slower)) for state in self.groups.values())

    def _foreground_running(self) -> bool:
        return any(self.groups[g].running for g in self.groups if g not in BACKGROUND)

    def _start_group(self, name: str, state: GroupState, frame: Frame, key: tuple[Any, ...]) -> None:
        old = self._cursors.get(name)
        if state.running and old is not None:
            try:
                old.interrupt()  # a stale query: free its thread instead of finishing it
            except Exception:
                pass
        call = self._group_call(name, frame)
        state.running, state.started, state.done_for = True, time.monotonic(), key
        if name not in BACKGROUND:
            self.gate.close()
        state.worker = self.run_worker(partial(self._group_work, name, frame, call), name=name,
                                       group=name, exclusive=True, thread=True, exit_on_error=False)

    def _group_call(self, name: str, frame: Frame) -> Callable[[duckdb.DuckDBPyConnection], Any]:
        if name == "signals":
            focus = self.view.latency_key
            return lambda cur: panels.signals(cur, frame, focus, self.monitor.event_names)
        if name == "tables":
            return lambda cur: panels.tables(cur, frame, self.monitor.event_names)
        if name == "loads":
            return lambda cur: panels.load_marks(cur, frame)
        if name == "alerts":
            return lambda cur: panels.firing_alerts(cur, frame)
        baseline = self.monitor.baseline
        return lambda cur: panels.drift_panel(cur, frame, baseline)

    def _group_work(self, name: str, frame: Frame, call: Callable[[duckdb.DuckDBPyConnection], Any]) -> None:
        """Runs in a worker thread, with a cursor of its own."""
        from ..duckdb_core import duckdb

        worker = get_current_worker()
        cur = self.monitor.cursor()
        self._cursors[name] = cur
        started = time.monotonic()
        paced = PacedCursor(cur, self.gate, lambda: worker.is_cancelled) if name in BACKGROUND else None
        try:
            data = call(paced or cur)
        except duckdb.InterruptException:
            return  # replaced by a newer refresh
        except Exception as exc:
            if not worker.is_cancelled:
                self.post_message(PanelFailed(name, frame.generation, _error_text(exc)))
            return
        finally:
            if self._cursors.get(name) is cur:
                del self._cursors[name]
            cur.close()
            waited = paced.waited if paced is not None else 0.0
            self._waited[name] = waited
        if not worker.is_cancelled:
            self.post_message(PanelData(name, frame, data, time.monotonic() - started - waited))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        for name, state in self.groups.items():
            if event.worker is state.worker and event.state in (
                    WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
                state.running = False
                # Time spent waiting for the foreground is not time the group took.
                state.duration = time.monotonic() - state.started - self._waited.pop(name, 0.0)
                if not self._foreground_running():
                    self.gate.open()
                if self.frame is not None:
                    self._start_due_groups(self.frame)  # the background groups waited for this

    def on_unmount(self) -> None:
        # Quitting must not wait for a drift scan to finish in its thread.
        for cur in list(self._cursors.values()):
            try:
                cur.interrupt()
            except Exception:
                pass

    @property
    def settled(self) -> bool:
        """Every panel shows the current view and nothing is running (used by tests)."""
        return self.settled_for(tuple(self.groups))

    def settled_for(self, groups: tuple[str, ...]) -> bool:
        """These groups of panels show the current view and do not run."""
        if self.frame is None:
            return self.clock is not None and not self._clock_running()
        return not self._clock_running() and all(
            not self.groups[g].running and self.groups[g].shown_generation == self.generation
            for g in groups)

    def _clock_running(self) -> bool:
        return self.clock_worker is not None and self.clock_worker.state in (
            WorkerState.PENDING, WorkerState.RUNNING)

    # --------------------------------------------------------------------------- results

    def on_panel_data(self, message: PanelData) -> None:
        if message.frame.generation != self.generation:
            return  # the view changed while it ran
        state = self.groups[message.group]
        state.shown_generation = message.frame.generation
        self.metrics.note_duration(message.group, message.seconds)
        data = message.data
        if message.group == "signals":
            self._show_signals(data, message.frame)
        elif message.group == "tables":
            self.query_one("#versions", VersionTable).show(data.versions, self._chosen_key())
            self.query_one("#recent", RequestTable).show(data.recent)
            self.query_one("#recent-panel").border_title = \
                f"Slow > {ms_text(panels.SLOW_MS)} or failed · enter: trace"
        elif message.group == "loads":
            self.marks = data
            for chart in self.query(LineChart):
                chart.mark(data)
        elif message.group == "alerts":
            self.query_one("#alerts", AlertBanner).show_alerts(data)
        elif message.group == "alerts":
            self.query_one("#alerts", AlertBanner).show_alerts(data)
        elif message.group == "drift":
            self.query_one("#drift", DriftBars).show(data)
            changed = f" · {data.changed}/{data.features} changed" if data.features else ""
            # Drift refreshes slowly (a heavy scan): say which window end it is for.
            as_of = f" · at {message.frame.end:%H:%M:%S}" if self.feed is not None else ""
            self.query_one("#drift-panel").border_title = f"Drift PSI{changed}{as_of}"
        self._draw_bars()

    def _show_signals(self, data: panels.Signals, frame: Frame) -> None:
        axis = (frame.start, frame.end)
        self.shown_frame = frame
        self.latency_keys = data.latency.keys
        gap = 1.6 * frame.every / (frame.end - frame.start)
        self.query_one("#latency-legend", Legend).update(latency_legend(data.latency))
        self.query_one("#latency-chart", LineChart).plot(latency_series(data.latency), axis,
                                                         max_gap=gap, marks=self.marks)
        self.query_one("#throughput-legend", Legend).update(throughput_legend(data.throughput))
        self.query_one("#throughput-chart", LineChart).plot(throughput_series(data.throughput), axis,
                                                            max_gap=gap, marks=self.marks)
        self.query_one("#errors", ErrorStrips).show(data.errors)
        self.query_one("#latency-panel").border_title = f"Latency p50 p95 p99 · log · {_every(frame)}"
        self.query_one("#throughput-panel").border_title = f"Throughput /s · {_every(frame)}"
        self.metrics.refreshes += 1
        self._note_lag(frame)

    def _note_lag(self, frame: Frame) -> None:
        shown = frame.clock.feed
        now_feed = self.monitor.feed_status()
        if shown is None or now_feed is None or not shown.committed_read:
            return
        waiting = now_feed.newest_read > shown.committed_read
        lag = time.monotonic() - shown.committed_read if waiting else 0.0
        self.metrics.last_lag = lag
        self.metrics.lags.append(lag)

    def on_panel_failed(self, message: PanelFailed) -> None:
        if message.generation != self.generation:
            return
        text = f"error: {message.error}"
        if message.group == "signals":
            for chart in self.query(LineChart):
                chart.clear(text)
            self.query_one("#errors", ErrorStrips).clear(text)
        elif message.group == "drift":
            self.query_one("#drift", DriftBars).show(panels.DriftView(message=text))
        self.groups.get(message.group, GroupState(0)).shown_generation = message.generation
        text = f"{message.group}: {message.error}"
        if text != self._last_failure:  # a failing query retried every tick: say it once
            self._last_failure = text
            self.notify(text, severity="error", timeout=6, markup=False)

    # --------------------------------------------------------------------------- ingestion

    def feed_changed(self, status: FeedStatus) -> None:
        previous, self.feed = self.feed, status
        if status == previous:
            return
        if previous is None or status.lines != previous.lines or status.ended != previous.ended \
                or status.pruned != previous.pruned:
            self.clock_pending = True
        if status.ended and not self._ended_noted:
            self._ended_noted = True
            self.notify(f"stream ended after {status.lines:,} lines; the data stays on screen",
                        timeout=6, markup=False)
        if status.error and status.error != self._error_noted:
            self._error_noted = status.error
            self.notify(clean(status.error), severity="error", timeout=8, markup=False)
        if self.refresh_interval is None:
            self.tick()
        self._show_waiting()
        self._draw_bars()

    # --------------------------------------------------------------------------- bars

    def _draw_bars(self) -> None:
        width = self.size.width or 120
        for selector, text in (("#topbar", self._topbar_text(width)), ("#status", self._status_text(width))):
            if self._bars.get(selector) != text:  # an unchanged bar is not repainted
                self._bars[selector] = text
                self.query_one(selector, Static).update(text)

    def _topbar_text(self, width: int) -> Text:
        text = Text("mlinv tui", style="bold")
        frame = self.shown_frame or self.frame  # the range the charts show, not the next one
        text.append(f"  window {self.view.window}")
        if frame is not None:
            fmt = "%H:%M:%S" if (frame.end - frame.start).total_seconds() < 86400 else "%m-%d %H:%M"
            text.append(f"  {frame.start.strftime(fmt)} → {frame.end.strftime(fmt)} UTC", style="dim")
        chosen = self.view.describe_filter()
        if chosen:
            text.append("  filter: ", style="bold")
            text.append(chosen, style="bold yellow")
            text.append(" (esc clears)", style="dim")
        if width >= 100:
            text.append("   ? help", style="dim")
        return text

    def _status_text(self, width: int) -> Text:
        narrow = width < 100
        text = Text()
        if self.view.paused:
            text.append(" PAUSED ", style="bold black on yellow")
        else:
            text.append(" LIVE ", style="bold black on green")
        sep = " │ "
        feed, clock = self.feed, self.clock
        text.append(sep + self.monitor.source_label)
        if feed is not None and feed.ended:
            text.append(" ended", style="bold yellow")
        events = clock.events if clock else 0
        text.append(sep + (f"{events:,} ev" if narrow else f"{events:,} events"))
        rejects = self._rejects()
        text.append(sep)
        text.append(f"{rejects:,} rej" if narrow else f"{rejects:,} rejected",
                    style="bold red" if rejects else "")
        if feed is not None:
            lag = self.metrics.last_lag
            text.append(sep + ("lag –" if lag is None else f"lag {lag:.1f}s"),
                        style="bold yellow" if feed.behind else "")
            if feed.behind and not narrow:
                text.append(f" ({feed.backlog / 2**20:.0f} MiB to ingest)", style="yellow")
        text.append(sep + self.view.window)
        if self.view.paused and not narrow:
            text.append("  ←→ scrub  p resume", style="dim")
        return text

    def _rejects(self) -> int:
        """In memory the rejects table is cut short (retention): count what was ingested."""
        feed, clock = self.feed, self.clock
        if self.monitor.retention is not None and feed is not None:
            return feed.rejects
        return clock.rejects if clock else 0

    def _show_waiting(self) -> None:
        waiting = self.query_one("#waiting", Static)
        grid = self.query_one("#panels", Grid)
        empty = self.clock is None or self.clock.newest is None
        waiting.display = empty
        grid.display = not empty
        if not empty:
            return
        feed = self.feed
        if self.clock is None:
            message = "Reading the database…"
        elif feed is None:
            message = "The database holds no events yet (mlinv ingest FILE…, or pipe logs into mlinv tui -)."
        elif feed.ended:
            message = (f"The stream ended before any event arrived ({feed.lines:,} lines read, "
                       f"{feed.rejects:,} rejected).")
        elif feed.waiting_for:
            message = "Waiting for " + ", ".join(clean(p) for p in feed.waiting_for) + " to appear…"
        else:
            message = (f"Waiting for log lines from {self.monitor.source_label}… "
                       f"({feed.lines:,} lines read, {feed.rejects:,} rejected)")
        waiting.update(Text(message, style="bold"))

    def _chosen_key(self) -> str | None:
        if not self.view.describe_filter():
            return None
        return "\x1f".join(p or "" for p in (self.view.model, self.view.version, self.view.service))

    # --------------------------------------------------------------------------- actions

    def change_view(self, view: View) -> None:
        """Every change of view starts a new generation: stale results are dropped."""
        self.view = view
        self.generation += 1
        self.clock_pending = True
        if self.clock is not None:
            self.frame = panels.make_frame(view, self.clock, self.generation)
            if self.frame is not None:
                self._start_due_groups(self.frame)
        self._draw_bars()
        self.tick()

    def action_window(self, name: str) -> None:
        if name in WINDOWS and name != self.view.window:
            self.change_view(replace(self.view, window=name))

    def action_pause(self) -> None:
        if self.view.paused:
            self.change_view(replace(self.view, paused_end=None))
        elif self.frame is not None:
            self.change_view(replace(self.view, paused_end=self.frame.end))

    def action_scrub(self, steps: int) -> None:
        if self.clock is None or self.view.span is None:
            self.notify("the 'all' window has nothing to scrub", timeout=2)
            return
        end = panels.scrub_end(self.view, self.clock, steps)
        if end is not None and end != self.view.paused_end:
            self.change_view(replace(self.view, paused_end=end))

    def action_next_series(self) -> None:
        keys = list(self.latency_keys)
        if len(keys) < 2:
            return
        current = self.view.latency_key if self.view.latency_key in keys else keys[0]
        self.change_view(replace(self.view, latency_key=keys[(keys.index(current) + 1) % len(keys)]))

    def action_clear_filter(self) -> None:
        if self.view.describe_filter():
            self.change_view(replace(self.view, model=None, version=None, service=None, latency_key=None))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        table = event.data_table
        if isinstance(table, VersionTable):
            row = table.selected()
            if row is None:
                return
            if row.key == self._chosen_key():
                self.action_clear_filter()
                return
            self.change_view(replace(self.view, model=row.model, version=row.version,
                                     service=None if row.version else row.service, latency_key=None))
        elif isinstance(table, RequestTable):
            request = table.selected()
            if request is not None and request.request_id:
                self.monitor.open_trace(request.request_id)

    def on_resize(self) -> None:
        self._draw_bars()
        # The tables pick their columns by width: lay them out again once the new sizes are
        # known (a database that does not change sends no new rows to do it).
        self.call_after_refresh(self._relayout_tables)

    def _relayout_tables(self) -> None:
        versions = self.query_one("#versions", VersionTable)
        versions.show(versions.rows_shown, versions.chosen)
        recent = self.query_one("#recent", RequestTable)
        recent.show(recent.rows_shown)


def _ms_label(value: float) -> str:
    return ms_text(value).replace(" ", "")


def _every(frame: Frame) -> str:
    from ..timeparse import format_duration

    return format_duration(frame.every.total_seconds())


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, MLInvestigateError):
        return clean(str(exc))
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return clean(f"{type(exc).__name__}: {first}")


class MonitorApp(App[None]):
    """The live dashboard over one database connection (and optionally a feed into it)."""

    CSS_PATH = "app.tcss"
    TITLE = "mlinv tui"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("question_mark", "help", "Help"),
        Binding("slash", "search", "Find request"),
    ]

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        source_label: str,
        feeder: Feeder | None = None,
        retention: Retention | None = None,
        baseline: str | None = None,
        view: View | None = None,
        refresh_interval: float | None = 1.0,
        drift: bool = True,
    ) -> None:
        super().__init__()
        self.con = con
        self.source_label = clean(source_label)
        self.feeder = feeder
        self.retention = retention
        self.baseline = baseline
        self.event_names = EventNames()
        self.main = MainScreen(view or View(), refresh_interval=refresh_interval, drift=drift)
        self._ingest_worker: Worker[None] | None = None
        self._cursor_lock = threading.Lock()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new cursor (a connection of its own) for one worker. The parent connection
        refuses concurrent calls ("connection is busy"), so cursors are made one at a time."""
        with self._cursor_lock:
            return self.con.cursor()

    def get_default_screen(self) -> Screen[Any]:
        return self.main

    def on_mount(self) -> None:
        if self.feeder is not None:
            self._ingest_worker = self._ingest()

    def feed_status(self) -> FeedStatus | None:
        return self.feeder.status() if self.feeder is not None else None

    @work(thread=True, exclusive=True, exit_on_error=False, group="ingest")
    def _ingest(self) -> None:
        assert self.feeder is not None
        worker = get_current_worker()
        self.feeder.run(lambda: worker.is_cancelled, lambda status: self.post_message(FeedProgress(status)))

    def on_feed_progress(self, message: FeedProgress) -> None:
        self.main.feed_changed(message.status)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        # Log- and user-derived text goes into markup here: escape it.
        reference = f"baseline {escape(clean(self.baseline))}" if self.baseline else (
            "the first quarter of the data\n"
            "                  before the window ('all': first vs last quarter)")
        if self.retention is None:
            retention = "Streamed lines are added to the database file; nothing is deleted."
        else:
            pruned = self.feed_status()
            retention = (f"In memory: keeps the {self.retention.describe()}"
                         f"\n        ({pruned.pruned if pruned else 0:,} events pruned so far).")
        self.push_screen(HelpScreen(HELP_TEXT.format(reference=reference, retention=retention)))

    def action_search(self) -> None:
        def chosen(text: str | None) -> None:
            if text:
                self.open_trace(text)

        self.push_screen(SearchScreen(), chosen)

    def open_trace(self, request_id: str) -> None:
        self._load_trace(request_id)

    @work(thread=True, exclusive=True, exit_on_error=False, group="trace")
    def _load_trace(self, request_id: str) -> None:
        cur = self.cursor()
        try:
            result = panels.run_trace(cur, request_id)
        except Exception as exc:
            self.post_message(TraceReady(request_id, None, _error_text(exc)))
            return
        finally:
            cur.close()
        self.post_message(TraceReady(request_id, result))

    def on_trace_ready(self, message: TraceReady) -> None:
        if message.error:
            self.notify(message.error, severity="error", timeout=6, markup=False)
        elif message.result is None or not message.result.rows:
            self.notify(f"no request or trace id starts with {clean(message.request_id)!r}",
                        severity="warning", timeout=5, markup=False)
        else:
            self.push_screen(TraceScreen(message.result))

