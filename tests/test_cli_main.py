"""The console entry point builds only the command being run (start-up time), and still
answers --help, --version and typos with the full app."""

from __future__ import annotations

import subprocess
import sys

from typer.main import get_command_name

from mlinvestigate.cli import _app_for, app


def _names(typer_app: object) -> list[str]:
    commands = [c.name or get_command_name(c.callback.__name__)
                for c in typer_app.registered_commands]  # type: ignore[attr-defined]
    groups = [g.name for g in typer_app.registered_groups]  # type: ignore[attr-defined]
    return commands + groups


def test_only_the_command_being_run_is_built() -> None:
    assert _names(_app_for(["summary", "--db", "x.duckdb"])) == ["summary"]
    assert _names(_app_for(["baseline", "list"])) == ["baseline"]


def test_no_command_or_an_unknown_one_gets_the_full_app() -> None:
    for argv in ([], ["--help"], ["--version"], ["sumary"]):
        assert _app_for(argv) is app


def test_every_registered_command_can_be_run_alone() -> None:
    for name in _names(app):
        assert _names(_app_for([name])) == [name]


def test_a_lean_command_still_gives_its_help() -> None:
    done = subprocess.run([sys.executable, "-c", "from mlinvestigate.cli import main; main()",
                           "summary", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--db" in done.stdout and "summary" in done.stdout


def test_an_interrupt_wrapped_by_duckdb_is_still_an_interrupt() -> None:
    """Ctrl-C inside a Python callback DuckDB runs (reading a registered Arrow table) arrives as
    a DuckDB error; it must end like any Ctrl-C (exit 130), not as an unexpected error."""
    from mlinvestigate.cli import _interrupted

    wrapped = RuntimeError("Invalid Input Error: reading the schema of the object registered as "
                           "'batch' failed: KeyboardInterrupt: ")
    assert _interrupted(wrapped)
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as inner:
            raise ValueError("while reading") from inner
    except ValueError as outer:
        assert _interrupted(outer)
    assert not _interrupted(ValueError("bad input"))
