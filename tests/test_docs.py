"""Docs that cannot go stale: the schema reference and the README follow the code."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlinvestigate.cli import app
from mlinvestigate.schema import EVENT_COLUMNS, columns_markdown

ROOT = Path(__file__).resolve().parent.parent


def test_schema_doc_embeds_the_generated_column_table() -> None:
    """docs/schema.md shows exactly the columns schema.py defines."""
    assert columns_markdown() in (ROOT / "docs" / "schema.md").read_text(encoding="utf-8")


def test_every_column_is_documented_with_its_type() -> None:
    text = (ROOT / "docs" / "schema.md").read_text(encoding="utf-8")
    for column in EVENT_COLUMNS:
        assert f"| `{column.name}` | {column.sql_type} |" in text


COMMANDS = sorted(c.name or c.callback.__name__ for c in app.registered_commands)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_in_the_readme(command: str) -> None:
    """A command a user cannot find in the README does not exist for them."""
    assert f"mlinv {command}" in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output and f"mlinv {command}" in result.output


def test_readme_quickstart_and_ci_run_the_same_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = next(line for line in ci.splitlines() if "pytest" in line).strip()
    assert command in readme
