"""`mlinv tui`: the live dashboard. Textual is imported only when the command runs."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from ..errors import UsageError
from . import app
from .common import DbOption, ModelOption, ServiceOption, VersionOption

WINDOW_CHOICES = ("5m", "15m", "1h", "all")


@app.command()
def tui(
    sources: Annotated[list[str] | None, typer.Argument(
        help="'-' to read a pipe (kubectl logs -f … | mlinv tui -), or log files to follow "
        "like tail -F. None: show the database.", show_default=False)] = None,
    follow: Annotated[list[str] | None, typer.Option(
        "--follow", "-F", help="Follow this file like tail -F: appends, rotation, truncation, a "
        "file that appears later (repeatable; files given as arguments are followed too).",
        show_default=False)] = None,
    new_only: Annotated[bool, typer.Option(
        "--new-only", help="Followed files: skip what they already hold, show only new lines.")] = False,
    db: DbOption = None,
    window: Annotated[str, typer.Option(
        "--window", "-w", help="Initial window: 5m, 15m, 1h or all (keys 1-4 change it).")] = "5m",
    baseline: Annotated[str | None, typer.Option(
        "--baseline", help="Drift reference: a saved baseline (mlinv baseline save NAME). "
        "Default: the first quarter of the data.", show_default=False)] = None,
    no_drift: Annotated[bool, typer.Option(
        "--no-drift", help="Leave out the drift panel (its scan reads the records' JSON: the "
        "heaviest query, worth skipping on a busy machine).")] = False,
    model: ModelOption = None,
    version: VersionOption = None,
    service: ServiceOption = None,
    retain: Annotated[int, typer.Option(
        "--retain", min=1000, help="Streams without --db: keep at most this many events in "
        "memory (the oldest are deleted).")] = 2_000_000,
    retain_for: Annotated[str, typer.Option(
        "--retain-for", help="Streams without --db: keep at most this much event time.")] = "2h",
) -> None:
    """Live dashboard: latency, throughput, errors and drift as the logs stream in, with the
    model versions, the slow or failed requests and their traces.

    Pipe logs in (kubectl logs -f deploy/x | mlinv tui -) or follow files. Lines go through
    the same ingest as `mlinv ingest` (rejected lines counted). With --db they are added to
    that database; otherwise they are kept in memory, bounded to the newest --retain events
    (2,000,000) and --retain-for of event time (2 h), pruned every 5 s. Without a pipe or
    files it shows the database.
    Keys: 1-4 window · p pause · ←/→ scrub · enter filter/trace · / find request · ? help · q quit.

    Example:  mlinv tui --follow /var/log/serving.jsonl
    """
    from .. import store
    from ..timeparse import parse_duration

    paths = list(sources or []) + list(follow or [])
    if paths.count("-") > 1:
        raise UsageError("'-' (stdin) can be given only once")
    if window not in WINDOW_CHOICES:
        raise UsageError(f"unknown --window {window!r}", hint="5m, 15m, 1h or all")
    files = [p for p in paths if p != "-"]
    reads_stdin = "-" in paths
    if reads_stdin and sys.stdin.isatty():
        raise UsageError("'-' reads a pipe, but stdin is the terminal",
                         hint="e.g. kubectl logs -f deploy/x | mlinv tui -")
    if not sys.stderr.isatty():  # Textual draws on stderr (stdout stays free)
        raise UsageError("mlinv tui draws on the terminal through stderr, but stderr is not one",
                         hint="for text output use mlinv summary, latency, errors …")
    keep_for = parse_duration(retain_for)
    streaming = bool(paths)

    from ..tui.feed import Feeder, Retention

    retention = None
    if streaming and db is None:
        con = store.connect(store.MEMORY)
        retention = Retention(max_events=retain, max_age=keep_for)
        label = _stream_label(reads_stdin, files)
    elif streaming:
        con = store.connect(db)
        label = _stream_label(reads_stdin, files) + f" → {os.path.basename(store.resolve_db_path(db))}"
    else:
        con = store.connect(db, read_only=True, create=False)
        label = os.path.basename(store.resolve_db_path(db))
    try:
        if baseline is not None:
            from ..drift.baseline import load_baseline

            load_baseline(con, baseline)  # an unknown name is a usage error now, not a panel message
        pipe_fd = _keyboard_from_terminal() if reads_stdin else None
        feeder = None
        if streaming:
            feeder = Feeder(con, pipe_fd=pipe_fd, follow=files, from_start=not new_only,
                            retention=retention)
            feeder.start_reader()  # drain the pipe from now on, while Textual starts

        from ..tui.app import MonitorApp
        from ..tui.panels import View

        view = View(window=window, model=model, version=version, service=service)
        MonitorApp(con, source_label=label, feeder=feeder, retention=retention, baseline=baseline,
                   view=view, drift=not no_drift).run()
    finally:
        con.close()


def _stream_label(reads_stdin: bool, files: list[str]) -> str:
    names = (["stdin"] if reads_stdin else []) + [os.path.basename(f) for f in files]
    return names[0] + (f" +{len(names) - 1}" if len(names) > 1 else "")


def _keyboard_from_terminal() -> int:
    """Keep the pipe on a new descriptor and put the terminal on fd 0.

    Textual reads keys from fd 0 (textual issue 4553): with logs piped in, fd 0 is the pipe.
    So the pipe is duplicated first (the feeder reads it from the copy) and /dev/tty, the
    controlling terminal, is put on fd 0 before the app starts — one process, no temp file
    (toolong instead runs a second process with stdin=/dev/tty and copies the pipe to a file)."""
    pipe_fd = os.dup(0)
    try:
        tty = os.open("/dev/tty", os.O_RDWR)
    except OSError as exc:
        os.close(pipe_fd)
        raise UsageError(f"cannot open the terminal for the keyboard: {exc.strerror}",
                         hint="run mlinv tui in a terminal; for a batch job use mlinv ingest -") from None
    os.dup2(tty, 0)
    os.close(tty)
    return pipe_fd
