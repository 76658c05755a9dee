"""The drift, baseline, quality and outliers commands through the real entry point."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from ingest_helpers import cli
from test_drift_sample_db import sample_db
from typer.testing import CliRunner

import mlinvestigate.cli.drift_cmds  # noqa: F401  (registers the commands until the lead wires them)
from mlinvestigate.cli import app


def db() -> str:
    return str(sample_db())


def test_table_output() -> None:
    result = cli("drift", "--db", db(), "--model", "fraud", "--feature", "features.amount",
                 "--feature", "features.merchant_category")
    assert result.code == 0, result.err
    assert "features.amount" in result.out and "significant" in result.out
    assert "Reference:" in result.out


def test_json_keys_are_the_column_names() -> None:
    result = cli("drift", "--db", db(), "--feature", "confidence", "--format", "json")
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    assert list(rows[0]) == ["feature", "kind", "verdict", "psi", "ks", "p_value", "js", "wasserstein",
                             "tv", "missing_ref_pct", "missing_cur_pct", "n_ref", "n_cur", "reason"]


def test_every_json() -> None:
    result = cli("drift", "--db", db(), "--model", "fraud", "--every", "10m", "--feature",
                 "features.amount", "-f", "json")
    assert result.code == 0, result.err
    row = json.loads(result.out)[0]
    assert row["feature"] == "features.amount" and row["onset"].startswith("2026-01-13T01:")


@pytest.mark.parametrize("args", [
    ["--reference", "garbage..x"],
    ["--current", "2h..3h"],
    ["--method", "bogus"],
    ["--binning", "weird"],
    ["--edges", "10,5"],
    ["--binning", "fixed"],
    ["--feature", "bad'name"],
    ["--every", "0s"],
    ["--reference-version", "v1.4.2"],
])
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = cli("drift", "--db", db(), *args)
    assert result.code == 2, (result.out, result.err)
    assert result.err.startswith("mlinv: error:")


def test_empty_selection_exits_1() -> None:
    result = cli("drift", "--db", db(), "--model", "no-such-model")
    assert result.code == 1
    assert "no events" in result.err


def test_baseline_commands(tmp_path: Path) -> None:
    copy = tmp_path / "copy.duckdb"
    shutil.copy(sample_db(), copy)
    saved = cli("baseline", "save", "first", "--db", str(copy), "--model", "fraud",
                "--feature", "features.amount")
    assert saved.code == 0, saved.err
    listed = cli("baseline", "list", "--db", str(copy), "-f", "json")
    assert [r["name"] for r in json.loads(listed.out)] == ["first"]
    against = cli("drift", "--db", str(copy), "--baseline", "first", "-f", "json")
    assert against.code == 0, against.err
    rows = json.loads(against.out)
    assert [r["feature"] for r in rows] == ["features.amount"]
    assert rows[0]["verdict"] == "significant"
    missing = cli("drift", "--db", str(copy), "--baseline", "nope")
    assert missing.code == 2
    assert cli("baseline", "delete", "first", "--db", str(copy)).code == 0


def test_quality_and_outliers_run() -> None:
    quality = cli("quality", "--db", db(), "--range", "features.amount=0:10000", "-f", "json")
    assert quality.code == 0, quality.err
    assert any(r["field"] == "features.amount" for r in json.loads(quality.out))
    outliers = cli("outliers", "--db", db(), "--limit", "5", "-f", "json")
    assert outliers.code == 0, outliers.err
    assert len(json.loads(outliers.out)) == 5
    assert cli("quality", "--db", db(), "--range", "nonsense").code == 2


@pytest.mark.parametrize("command", [["drift"], ["quality"], ["outliers"], ["baseline", "save"],
                                     ["baseline", "list"], ["baseline", "delete"]])
def test_help_has_an_example(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Example:  mlinv {command[0]}" in result.output


@pytest.mark.parametrize("extra", [["--every", "10m"], ["--baseline", "jan"]])
def test_spark_says_which_drift_options_it_lacks(extra: list[str], tmp_path: Path) -> None:
    """Checked before pyspark is imported or a JVM starts: one line, exit 2."""
    result = cli("drift", "--engine", "spark", "--store", str(tmp_path), *extra)
    assert result.code == 2
    assert f"drift {extra[0]} does not run on Spark yet" in result.err
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1


def test_drift_reads_a_store_on_spark_only(tmp_path: Path) -> None:
    result = cli("drift", "--store", str(tmp_path))
    assert result.code == 2
    assert "drift reads a Parquet store with --engine spark only" in result.err
