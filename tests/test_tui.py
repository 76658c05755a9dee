"""`mlinv tui`: each key and selection driven with Pilot on a fixed database, the panels' view
functions on hand-made Results, the stream (pipe) path, and a few screen snapshots.

The database is a generated 20,000-line sample (seed 7) ingested into memory once per module;
the app runs with no refresh timer, so every refresh is caused by the test, and the window
ends at the newest event (no wall clock anywhere on screen)."""

from __future__ import annotations

import asyncio
import functools
import io
import os
import time
from collections.abc import Callable, Coroutine, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from rich.console import Console

from mlinvestigate import store
from mlinvestigate.ingest.pipeline import ingest_paths
from mlinvestigate.result import Result
from mlinvestigate.sample import generate
from mlinvestigate.tui import panels
from mlinvestigate.tui.app import HelpScreen, MainScreen, MonitorApp, SearchScreen, TraceScreen
from mlinvestigate.tui.feed import Checkpoints, Feeder, Retention
from mlinvestigate.tui.panels import Clock, View
from mlinvestigate.tui.widgets import LineChart, RequestTable, Series, VersionTable, sparkline

SAMPLE_LINES = 20_000
SIZE = (120, 36)
SMALL = (80, 24)


@pytest.fixture(scope="module")
def sample_con(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    path = tmp_path_factory.mktemp("tui") / "sample.jsonl"
    generate(path, SAMPLE_LINES, seed=7)
    con = store.connect(store.MEMORY)
    ingest_paths(con, [str(path)])
    yield con
    con.close()


def run_async(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async Pilot test with asyncio.run (no pytest-asyncio needed)."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return wrapper


def make_app(con: duckdb.DuckDBPyConnection, **kwargs: object) -> MonitorApp:
    kwargs.setdefault("view", View(window="1h"))
    kwargs.setdefault("drift", False)
    return MonitorApp(con, source_label="sample.duckdb", refresh_interval=None, **kwargs)  # type: ignore[arg-type]


QUICK = ("signals", "tables")
"""The panel groups most tests wait for (and the only ones they run: drift=False in make_app
unless a test asks for it; the drift scan costs ~1 s here)."""


async def settle(pilot: object, app: MonitorApp, groups: tuple[str, ...] = QUICK,
                 timeout: float = 20.0) -> None:
    """Wait until these panels show the current view (workers done, messages handled)."""
    deadline = time.monotonic() + timeout
    await pilot.pause()  # type: ignore[attr-defined]
    while not app.main.settled_for(groups):
        if time.monotonic() > deadline:
            raise AssertionError("the panels did not settle")
        await pilot.pause(0.02)  # type: ignore[attr-defined]
    await pilot.pause()  # type: ignore[attr-defined]


def screen_text(app: MonitorApp) -> str:
    """What the terminal shows, as plain text (as a tmux capture would)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


# ---------------------------------------------------------------------------------- keys


@run_async
async def test_main_screen_shows_the_four_signals_versions_and_requests(
        sample_con: duckdb.DuckDBPyConnection) -> None:
    app = make_app(sample_con, drift=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app, tuple(app.main.groups))
        text = screen_text(app)
        assert "significant" in text  # drift of the fraud amounts after 01:48
        for title in ("Latency", "Throughput", "Errors by category", "Drift PSI", "Versions",
                      "Slow > 500 ms or failed"):
            assert title in text
        assert "fraud v2.1.0" in text and "critical" in text
        assert "loads" in text and "▲" in text  # the bad deploy at 02:47 is in the last hour
        assert "LIVE" in text and "19,9" in text and "rejected" in text
        versions = app.main.query_one("#versions", VersionTable)
        assert {r.version for r in versions.rows_shown} >= {"v1.4.2", "v2.1.0", "v3.2.1"}
        # The large recsys inputs keep its p99 over 500 ms from ~02:05 to the end.
        assert "▲ p99 latency over 500ms [recsys" in text


@run_async
async def test_window_keys_change_the_time_range(sample_con: duckdb.DuckDBPyConnection) -> None:
    app = make_app(sample_con, view=View(window="5m"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        for key, name, span in (("2", "15m", timedelta(minutes=15)), ("3", "1h", timedelta(hours=1))):
            await pilot.press(key)
            await settle(pilot, app)
            frame = app.main.frame
            assert app.main.view.window == name and frame is not None
            assert frame.end - frame.start == span
            assert f"window {name}" in screen_text(app)
        await pilot.press("4")
        await settle(pilot, app)
        assert app.main.frame is not None and app.main.frame.whole


@run_async
async def test_pause_then_scrub_back_and_forward(sample_con: duckdb.DuckDBPyConnection) -> None:
    app = make_app(sample_con)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.main.frame is not None
        newest_end = app.main.frame.end
        await pilot.press("left")  # scrubbing pauses
        await settle(pilot, app)
        assert app.main.view.paused and "PAUSED" in screen_text(app)
        assert app.main.frame.end == newest_end - timedelta(minutes=15)
        await pilot.press("right", "right")  # clamped at the newest event
        await settle(pilot, app)
        assert app.main.view.paused and app.main.frame.end == newest_end
        await pilot.press("p")
        await settle(pilot, app)
        assert not app.main.view.paused and "LIVE" in screen_text(app)
        await pilot.press("space")
        assert app.main.view.paused


@run_async
async def test_search_by_request_prefix_opens_its_trace(sample_con: duckdb.DuckDBPyConnection) -> None:
    app = make_app(sample_con)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        recent = app.main.query_one("#recent", RequestTable)
        request_id = recent.rows_shown[0].request_id
        assert request_id
        await pilot.press("slash")
        assert isinstance(app.screen, SearchScreen)
        await pilot.press(*request_id[:9], "enter")
        await _wait_for_screen(pilot, app, TraceScreen)
        assert isinstance(app.screen, TraceScreen)
        assert request_id in app.screen.result.title
        assert "waterfall" in screen_text(app)
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


@run_async
async def test_enter_on_a_slow_request_opens_the_same_trace_as_the_cli(
        sample_con: duckdb.DuckDBPyConnection) -> None:
    from mlinvestigate.investigations.trace import trace

    app = make_app(sample_con)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        recent = app.main.query_one("#recent", RequestTable)
        recent.focus()
        await pilot.press("down", "enter")
        await _wait_for_screen(pilot, app, TraceScreen)
        assert isinstance(app.screen, TraceScreen)
        chosen = recent.rows_shown[1].request_id
        assert app.screen.result.rows == trace(sample_con.cursor(), chosen).rows


@run_async
async def test_an_ambiguous_or_unknown_id_is_a_message_not_a_crash(
        sample_con: duckdb.DuckDBPyConnection) -> None:
    app = make_app(sample_con)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        for count, text in enumerate(("req-", "no-such-request"), start=1):
            await pilot.press("slash", *text, "enter")
            await _until(pilot, lambda count=count: len(app._notifications) >= count)
            assert isinstance(app.screen, MainScreen)
        messages = " ".join(str(n.message) for n in app._notifications)
        assert "matches" in messages and "no request or trace id starts with" in messages


@run_async
async def test_selecting_a_version_filters_every_panel(sample_con: duckdb.DuckDBPyConnection) -> None:
    app = make_app(sample_con)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        versions = app.main.query_one("#versions", VersionTable)
        row = next(i for i, r in enumerate(versions.rows_shown) if r.version == "v2.1.0")
        versions.focus()
        versions.move_cursor(row=row)
        await pilot.press("enter")
        await settle(pilot, app)
        view = app.main.view
        assert (view.model, view.version, view.service) == ("fraud", "v2.1.0", None)
        assert app.main.frame is not None and app.main.frame.filters.version == "v2.1.0"
        text = screen_text(app)
        assert "filter: fraud v2.1.0" in text
        recent = app.main.query_one("#recent", RequestTable)
        assert recent.rows_shown and all(r.version == "v2.1.0" for r in recent.rows_shown)
        assert "fraud model-server" in text  # the latency chart follows the filter
        await pilot.press("escape")
        await settle(pilot, app)
        assert app.main.view.describe_filter() is None and "filter:" not in screen_text(app)


@run_async
async def test_help_screen_states_keys_and_the_memory_bound_then_q_quits(
        sample_con: duckdb.DuckDBPyConnection) -> None:
    app = make_app(sample_con, retention=Retention())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        assert "2,000,000 events" in text and "2 h of event time" in text
        assert "mlinv latency --by service --every" in text
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


async def _wait_for_screen(pilot: object, app: MonitorApp, kind: type, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not isinstance(app.screen, kind) and time.monotonic() < deadline:
        await pilot.pause(0.02)  # type: ignore[attr-defined]
    await pilot.pause()  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------- a stream


@run_async
async def test_a_piped_stream_waits_counts_rejects_and_survives_its_end(tmp_path: Path) -> None:
    log = tmp_path / "stream.jsonl"
    generate(log, 3000, seed=3)
    lines = log.read_bytes().splitlines(keepends=True)
    read_fd, write_fd = os.pipe()
    con = store.connect(store.MEMORY)
    retention = Retention()
    feeder = Feeder(con, pipe_fd=read_fd, retention=retention)
    app = MonitorApp(con, source_label="stdin", feeder=feeder, retention=retention,
                     refresh_interval=0.25)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.3)
            assert "Waiting for log lines from stdin" in screen_text(app)
            os.write(write_fd, b"".join(lines[:1500]) + b"this is not json\n{\"broken\": \n")
            await _until(pilot, lambda: app.main.clock is not None and app.main.clock.events > 1000)
            await _until(pilot, lambda: "Latency" in screen_text(app))
            first = app.main.clock.events if app.main.clock else 0
            os.write(write_fd, b"".join(lines[1500:]))
            os.close(write_fd)
            await _until(pilot, lambda: app.main.feed is not None and app.main.feed.ended)
            await _until(pilot, lambda: app.main.clock is not None and app.main.clock.events > first)
            text = screen_text(app)
            assert "ended" in text and "rejected" in text
            assert app.main.feed is not None and app.main.feed.rejects >= 2
            assert app.is_running  # the end of stdin does not close the dashboard
            await pilot.press("q")
    finally:
        con.close()


async def _until(pilot: object, condition: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await pilot.pause(0.05)  # type: ignore[attr-defined]


def test_retention_keeps_the_newest_events(tmp_path: Path) -> None:
    log = tmp_path / "r.jsonl"
    generate(log, 5000, seed=5, corrupt=False)
    con = store.connect(store.MEMORY)
    ingest_paths(con, [str(log)])
    newest = con.execute("SELECT max(ts) FROM events").fetchone()[0]
    deleted = Retention(max_events=1000, max_age=timedelta(days=1)).prune(con)
    kept = con.execute("SELECT count(*), max(ts) FROM events").fetchone()
    assert kept == (1000, newest) and deleted > 0
    Retention(max_events=10_000, max_age=timedelta(minutes=1)).prune(con)
    oldest = con.execute("SELECT min(ts) FROM events").fetchone()[0]
    assert oldest >= newest - timedelta(minutes=1)


def _row_groups(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('events')").fetchone()[0]


def test_the_feeders_checkpoints_give_back_the_rows_the_retention_deleted() -> None:
    con = store.connect(store.MEMORY)
    checkpoints = Checkpoints(every_lines=300_000)
    checkpoints.take_over(con)
    for start in range(0, 300_000, 100_000):  # three commits, as a stream arrives
        con.execute("INSERT INTO events (ts, event, attrs) SELECT TIMESTAMP '2026-01-01' + i * INTERVAL 1 "
                    "SECOND, 'prediction', '{\"n\": ' || i || '}' FROM range($a, $a + 100000) r(i)",
                    {"a": start})
    Retention(max_events=1000, max_age=timedelta(days=30)).prune(con)
    before = _row_groups(con)
    assert before >= 3
    assert not checkpoints.ingested(con, 200_000)  # not yet: the deleted rows still take room
    assert _row_groups(con) == before
    assert checkpoints.ingested(con, 100_000)
    assert _row_groups(con) == 1
    assert con.execute("SELECT count(*) FROM events").fetchone()[0] == 1000


def test_a_checkpoint_refused_during_another_write_is_tried_again_later() -> None:
    class RefusingOnce:
        """DuckDB refuses a CHECKPOINT while it counts another transaction as a write; which
        queries do is not reproducible on demand, so the refusal is simulated."""

        def __init__(self) -> None:
            self.calls = 0

        def execute(self, sql: str) -> None:
            self.calls += 1
            if self.calls == 1:
                raise duckdb.TransactionException("Cannot CHECKPOINT: there are other write transactions")

    cursor = RefusingOnce()
    checkpoints = Checkpoints(every_lines=10)
    assert not checkpoints.ingested(cursor, 50)  # type: ignore[arg-type]  # refused: not an error
    assert checkpoints.ingested(cursor, 0)  # type: ignore[arg-type]  # the 50 lines are still owed one
    assert not checkpoints.ingested(cursor, 5)  # type: ignore[arg-type]
    assert cursor.calls == 2


# ---------------------------------------------------------------------------------- views


def _frame(start: datetime, minutes: int = 5) -> panels.Frame:
    end = start + timedelta(minutes=minutes)
    clock = Clock(start, end, 10, 0)
    frame = panels.make_frame(View(window="5m"), clock, 0)
    assert frame is not None
    return frame


def test_latency_view_focuses_the_busiest_service_and_model() -> None:
    t0 = datetime(2026, 1, 13, 3, 0)
    frame = _frame(t0)
    columns = ["interval_start", "service", "model_id", "requests", "share_pct", "p50", "p95", "p99", "max"]
    rows = [(t0, "gateway", "fraud", 10, 100.0, 20.0, 40.0, 50.0, 60.0),
            (t0, "model-server", "fraud", 30, 100.0, 10.0, 20.0, 30.0, 35.0),
            (t0 + timedelta(seconds=5), "model-server", "fraud", 30, 100.0, 11.0, 21.0, 31.0, 35.0)]
    view = panels.latency_view(Result("Latency", columns, rows), frame, None)
    assert view.focus == ("model-server", "fraud") and view.keys[1] == ("gateway", "fraud")
    assert view.current == {"p50": 11.0, "p95": 21.0, "p99": 31.0}
    assert [y for _, y in view.series["p99"]] == [30.0, 31.0]
    assert view.others == (("fraud gateway", 50.0),)
    chosen = panels.latency_view(Result("Latency", columns, rows), frame, ("gateway", "fraud"))
    assert chosen.focus == ("gateway", "fraud")


def test_throughput_view_gives_rates_over_the_part_of_each_bucket_in_the_window() -> None:
    t0 = datetime(2026, 1, 13, 3, 0)
    frame = _frame(t0)
    columns = ["interval_start", "received", "processed", "failed", "dropped", "received_per_s",
               "peak_per_s", "in_flight_mean", "in_flight_peak"]
    last = frame.end - timedelta(seconds=2)  # a bucket that the window cuts after ~2 s
    rows = [(t0, 50, 45, 5, 0, 10.0, 12.0, 1.0, 2), (last, 4, 4, 0, 1, 2.0, 2.0, 0.1, 1)]
    view = panels.throughput_view(Result("Throughput", columns, rows), frame)
    assert view.series["received"][0][1] == pytest.approx(50 / frame.every.total_seconds())
    assert view.current["received"] == pytest.approx(2.0, rel=0.01)
    assert view.totals == {"received": 54, "processed": 49, "failed": 5, "dropped": 1}


def test_scrub_is_clamped_to_the_data() -> None:
    first, newest = datetime(2026, 1, 13, 0, 0), datetime(2026, 1, 13, 1, 0)
    clock = Clock(first, newest, 10, 0)
    view = View(window="15m")
    back = panels.scrub_end(view, clock, -100)
    assert back == first + timedelta(minutes=15)
    forward = panels.scrub_end(View(window="15m", paused_end=back), clock, 100)
    assert forward == newest + timedelta(microseconds=1)


def test_no_events_means_no_frame() -> None:
    assert panels.make_frame(View(), Clock(None, None, 0, 0), 0) is None


def test_drift_panel_says_not_enough_data_for_a_short_history(sample_con: duckdb.DuckDBPyConnection) -> None:
    clock = panels.read_clock(sample_con, None)
    assert clock.first is not None
    frame = panels.make_frame(View(window="5m", paused_end=clock.first + timedelta(minutes=5)), clock, 0)
    assert frame is not None
    view = panels.drift_panel(sample_con.cursor(), frame)
    assert view.message == panels.NOT_ENOUGH


def test_alert_banner_names_what_fires_at_the_window_end_only(
        sample_con: duckdb.DuckDBPyConnection) -> None:
    clock = panels.read_clock(sample_con, None)
    assert clock.first is not None and clock.newest is not None
    during_deploy = clock.first + timedelta(hours=3, minutes=5)  # bad deploy: 02:48-03:20
    after_deploy = clock.first + timedelta(hours=3, minutes=35)
    for end, firing in ((during_deploy, True), (after_deploy, False)):
        frame = panels.make_frame(View(window="1h", paused_end=end), clock, 0)
        assert frame is not None
        texts = panels.firing_alerts(sample_con.cursor(), frame)
        assert any("model errors over 1% [fraud" in t for t in texts) is firing, texts
    late = panels.make_frame(View(window="1h"), clock, 0)
    assert late is not None
    texts = panels.firing_alerts(sample_con.cursor(), late)
    assert texts and all(t.startswith("▲ ") for t in texts)
    assert any("p99 latency over 500ms [recsys" in t for t in texts)


@run_async
async def test_line_chart_draws_lines_gaps_markers_and_the_time_axis() -> None:
    from textual.app import App, ComposeResult

    class ChartApp(App[None]):
        def compose(self) -> ComposeResult:
            yield LineChart(id="chart")

    t0 = datetime(2026, 1, 13, 2, 0)
    app = ChartApp()
    async with app.run_test(size=(40, 8)) as pilot:
        chart = app.query_one(LineChart)
        mark = panels.LoadMark(t0 + timedelta(minutes=30), "fraud v2.1.0", "critical")
        chart.plot([Series("a", ((0.0, 1.0), (0.2, 4.0), (0.8, 2.0)), "red")],
                   (t0, t0 + timedelta(hours=1)), max_gap=0.3, marks=[mark])
        await pilot.pause()
        lines = chart.render().plain.splitlines()
    assert len(lines) == 8 and lines[0].startswith("      5┤")  # nice ceiling of 4
    plot = "".join(line[8:] for line in lines[:6])
    assert any("\u2800" < ch <= "\u28ff" for ch in plot)
    # The gap between x=0.2 and x=0.8 is wider than max_gap: no dots in the middle columns.
    assert all(line[8 + 14:8 + 18].strip() == "" for line in lines[:6])
    assert "▲" in lines[6] and lines[7].strip() == "02:00:00                03:00:00"


def test_sparkline_scales_each_row_to_its_own_peak() -> None:
    assert sparkline([(0.05, 1.0), (0.95, 4.0)], 4) == "▂  █"


def test_sanitized_labels_never_carry_escape_sequences() -> None:
    assert panels.key_label(("\x1b[31mevil", "m\x07")) == "m evil"


# ---------------------------------------------------------------------------------- snapshots
# Layout only; review every --snapshot-update in the report before accepting it.


async def _settled_main(pilot: Any) -> None:
    app = pilot.app
    await settle(pilot, app, tuple(app.main.groups))
    # The tables lay themselves out again after the resize's refresh (call_after_refresh);
    # on a busy machine that comes after the panels settle: let it happen before the shot.
    await pilot.pause(0.2)
    await pilot.pause()


@pytest.mark.parametrize("size", [SIZE, SMALL], ids=["120x36", "80x24"])
def test_snapshot_main_screen(snap_compare: Any, sample_con: duckdb.DuckDBPyConnection,
                              size: tuple[int, int]) -> None:
    assert snap_compare(make_app(sample_con, drift=True), terminal_size=size, run_before=_settled_main)


@pytest.mark.parametrize("size", [SIZE, SMALL], ids=["120x36", "80x24"])
def test_snapshot_trace_screen(snap_compare: Any, sample_con: duckdb.DuckDBPyConnection,
                               size: tuple[int, int]) -> None:
    async def open_trace(pilot: Any) -> None:
        app = pilot.app
        await settle(pilot, app)
        # A fixed request: the gateway timeout at 03:44:28 with no model-server line.
        app.open_trace("req-afec10e636")
        await _wait_for_screen(pilot, app, TraceScreen)

    assert snap_compare(make_app(sample_con), terminal_size=size, run_before=open_trace)


# ---------------------------------------------------------------------------------- command


def test_command_help_has_an_example_and_the_memory_bound() -> None:
    from typer.testing import CliRunner

    import mlinvestigate.cli.tui_cmd  # noqa: F401  (registers `tui`)
    from mlinvestigate.cli import app

    result = CliRunner().invoke(app, ["tui", "--help"])
    assert result.exit_code == 0
    assert "Example:  mlinv tui" in result.output and "2,000,000" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["-"], "stderr is not one"),
    (["--window", "2h"], "unknown --window"),
    (["-", "-"], "only once"),
])
def test_command_refuses_what_it_cannot_show(args: list[str], message: str) -> None:
    from typer.testing import CliRunner

    import mlinvestigate.cli.tui_cmd  # noqa: F401
    from mlinvestigate.cli import app
    from mlinvestigate.errors import UsageError

    result = CliRunner().invoke(app, ["tui", *args])
    assert isinstance(result.exception, UsageError) and message in str(result.exception)


def test_followed_file_that_appears_later_is_ingested(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "later.jsonl"
    con = store.connect(store.MEMORY)
    feeder = Feeder(con, follow=[str(path)], retention=Retention())
    seen: list[object] = []
    stop = threading.Event()
    worker = threading.Thread(target=feeder.run, args=(stop.is_set, seen.append))
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while not feeder.status().waiting_for and time.monotonic() < deadline:
            time.sleep(0.02)
        assert feeder.status().waiting_for == (str(path),)
        generate(path, 500, seed=1, corrupt=False)
        while feeder.status().events < 400 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert feeder.status().events >= 400 and feeder.status().waiting_for == ()
        assert feeder.status().source == "later.jsonl"
    finally:
        stop.set()
        worker.join()
        con.close()
