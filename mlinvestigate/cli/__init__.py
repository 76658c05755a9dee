"""The `mlinv` command line: a thin layer over the library.

Each command parses options, calls one core function and renders its Result. `main()` is the
one error boundary: known errors become one line on stderr and a documented exit code; a
traceback is shown only with MLINV_DEBUG=1.

Exit codes: 0 ok · 1 empty result or unexpected error · 2 usage (bad option, time, rule) ·
3 unreadable input · 4 database unavailable or in use · 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer

from .. import __version__
from ..errors import MLInvestigateError

_APP_SETTINGS: dict[str, Any] = {
    "name": "mlinv",
    "help": "Investigate ML model-serving incidents from JSON prediction logs.\n\n"
    "Quick start:  mlinv ingest sample_logs/  then  mlinv summary",
    "no_args_is_help": True,
    "add_completion": False,
    "pretty_exceptions_enable": False,
    "rich_markup_mode": None,
    "context_settings": {"help_option_names": ["-h", "--help"]},
}
app = typer.Typer(**_APP_SETTINGS)


def _version_callback(value: bool) -> None:
    if value:
        print(f"mlinv {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
) -> None:
    """Investigate ML model-serving incidents from JSON prediction logs."""


def _register_commands() -> None:
    # Each module registers its commands on `app` when imported; the heavy imports of every
    # command stay inside the command functions, so `mlinv --help` stays fast.
    from . import (  # noqa: F401
        alert_cmds,
        data_cmds,
        diagnose_cmds,
        drift_cmds,
        export_cmds,
        investigate,
        tui_cmd,
    )


_register_commands()


def _app_for(argv: list[str]) -> typer.Typer:
    """The app with only the command being run: typer builds a click command (and evaluates the
    type hints) of every registered command on each invocation, ~0.15 s for all of them."""
    from typer.main import get_command_name

    name = next((arg for arg in argv if not arg.startswith("-")), None)
    commands = [c for c in app.registered_commands
                if c.callback is not None and (c.name or get_command_name(c.callback.__name__)) == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if not commands and not groups:
        return app  # no command, --version, --help or a typo: the full app answers
    lean = typer.Typer(**_APP_SETTINGS)
    lean.registered_callback = app.registered_callback
    lean.registered_commands = commands
    lean.registered_groups = groups
    return lean


def main() -> None:
    """Entry point for the console scripts."""
    try:
        # Without standalone mode click returns the code of a typer.Exit instead of exiting.
        code = _app_for(sys.argv[1:])(standalone_mode=False)
    except MLInvestigateError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        print("mlinv: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        # `mlinv … | head`: the reader left; that is not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("mlinv: aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # click's usage errors and anything unexpected
        if _is_a(exc, "NoArgsIsHelpError"):
            exc.show()  # type: ignore[attr-defined]  (prints the help)
            sys.exit(0)
        if _is_a(exc, "ClickException"):
            # typer bundles its own copy of click: match by class name, not by import.
            exc.show()  # type: ignore[attr-defined]
            sys.exit(2 if _is_a(exc, "UsageError") else int(getattr(exc, "exit_code", 1)))
        if _interrupted(exc):
            print("mlinv: interrupted", file=sys.stderr)
            sys.exit(130)
        if os.environ.get("MLINV_DEBUG"):
            raise
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        _fail(f"unexpected error: {type(exc).__name__}: {first_line} (set MLINV_DEBUG=1 for a traceback)", 1)
    if code == 130:  # typer turns a Ctrl-C inside a command into Exit(130), silently
        print("mlinv: interrupted", file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)


def _interrupted(exc: BaseException) -> bool:
    """A Ctrl-C that landed in Python code DuckDB was calling (e.g. reading a registered Arrow
    table) comes back as a DuckDB error naming the KeyboardInterrupt, not as the interrupt."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt) or "KeyboardInterrupt" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _is_a(exc: BaseException, class_name: str) -> bool:
    return any(cls.__name__ == class_name for cls in type(exc).__mro__)


def _fail(message: str, code: int) -> None:
    from ..sanitize import clean

    print(f"mlinv: error: {clean(message)}", file=sys.stderr)
    sys.exit(code)
