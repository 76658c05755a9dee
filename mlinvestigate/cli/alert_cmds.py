"""`mlinv check`: alert rules replayed over the logged history (see mlinvestigate/alerts/)."""

from __future__ import annotations

from typing import Annotated

import typer

from . import app
from .common import (
    CommonOptions,
    DbOption,
    FormatOption,
    LogsOption,
    ModelOption,
    SectionOption,
    ServiceOption,
    SinceOption,
    UntilOption,
    VersionOption,
    WallClockOption,
    WhereOption,
    open_database,
)


@app.command()
def check(
    rules: Annotated[str | None, typer.Option(
        "--rules", help="Rule file (TOML, see docs/alerts.md). Default: the rules shipped with mlinv.",
        show_default=False)] = None,
    step: Annotated[str, typer.Option("--step", help="Evaluation interval, e.g. 30s, 1m, 5m.")] = "1m",
    print_defaults: Annotated[bool, typer.Option(
        "--print-default-rules", help="Print the shipped rule file (a start for your own) and exit.")
    ] = False,
    since: SinceOption = None,
    until: UntilOption = None,
    wall_clock: WallClockOption = False,
    model: ModelOption = None,
    version: VersionOption = None,
    service: ServiceOption = None,
    where: WhereOption = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many alerts.", min=1)] = 100,
    fmt: FormatOption = "table",
    section: SectionOption = None,
    db: DbOption = None,
    logs: LogsOption = None,
) -> None:
    """Replay alert rules over the logged history, with Prometheus semantics (pending → firing
    after `for`, keep_firing_for); list every alert that fired, with its worst value.

    Exit code 1 when an alert is firing at the end of the window (for cron and CI), 2 for a
    bad option or rule file.

    Example:  mlinv check --rules rules.toml --since 6h --step 1m
    """
    from ..alerts.rules import default_rules_path, load_rules

    if print_defaults:
        print(default_rules_path().read_text(encoding="utf-8"), end="")
        return
    options = CommonOptions(db, logs, since, until, wall_clock, model, version, service, where, limit, fmt)
    options.check_format()
    from ..alerts.check import check as run_check
    from ..alerts.check import firing_at_end
    from ..investigations.filters import resolve_filters
    from ..output import find_section, render
    from ..timeparse import parse_every

    interval = parse_every(step)
    loaded = load_rules(rules)
    source = rules or "the default rules"
    with open_database(db, logs) as con:
        filters = resolve_filters(con, since, until, wall_clock, model=model, version=version,
                                  service=service, where=where)
        result = run_check(con, filters, loaded, step=interval, limit=limit, source=source)
    # No empty check here: "no alert fired" is an answer (exit 0), as a table with no rows.
    render(result, fmt, section=find_section(result, section) if section is not None else None)
    if firing_at_end(result):
        raise typer.Exit(1)
