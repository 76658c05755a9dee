"""End to end: logs piped into `mlinv tui -` in a real terminal (tmux), read back from the
screen. The keyboard must work although stdin is the pipe."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlinvestigate.sample import generate

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

BENCH = Path(__file__).resolve().parent.parent / "bench" / "tui_keepup.py"
# The command module is imported explicitly: it registers `tui` on the CLI app. COLUMNS and
# LINES are dropped because Textual sizes the screen from them when set (the test runner's
# environment may have them, and the tmux server inherits it).
MLINV_TUI = (f"env -u COLUMNS -u LINES {shlex.quote(sys.executable)} -c "
             "'import mlinvestigate.cli.tui_cmd; from mlinvestigate.cli import main; main()' tui")


@pytest.fixture
def session() -> Iterator[str]:
    name = f"mlinv-tui-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def capture(name: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", name], capture_output=True,
                          text=True).stdout


def wait_for(name: str, condition: Callable[[str], bool], timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = capture(name)
        if condition(screen):
            return screen
        time.sleep(0.2)
    raise AssertionError(f"screen never matched; last capture:\n{screen}")


def events_shown(screen: str) -> int:
    match = re.search(r"│ ([\d,]+) events", screen)
    return int(match.group(1).replace(",", "")) if match else -1


def test_piped_logs_reach_the_screen_and_the_keyboard_still_works(tmp_path: Path, session: str) -> None:
    log = tmp_path / "stream.jsonl"
    generate(log, 6000, seed=7)
    # 400 lines/s: the stream lasts 15 s, so the count visibly grows while we look.
    pipeline = (f"{shlex.quote(sys.executable)} {shlex.quote(str(BENCH))} --limiter --rate 400 "
                f"< {shlex.quote(str(log))} | {MLINV_TUI} -")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "36", pipeline],
                   check=True)
    screen = wait_for(session, lambda s: "Latency" in s and events_shown(s) > 0)
    for title in ("Throughput", "Errors by category", "Drift PSI", "Versions", "stdin", "rejected"):
        assert title in screen
    first = events_shown(screen)
    screen = wait_for(session, lambda s: events_shown(s) > first + 200)
    wait_for(session, lambda s: re.search(r"(fraud|recsys) (v\d|gateway)", s) is not None)

    subprocess.run(["tmux", "send-keys", "-t", session, "2"], check=True)  # keys come from /dev/tty
    wait_for(session, lambda s: "window 15m" in s)
    subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = subprocess.run(["tmux", "has-session", "-t", session], capture_output=True)
        if alive.returncode != 0:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("q did not quit:\n" + capture(session))
