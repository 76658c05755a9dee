"""The investigation commands through the real entry point (`mlinvestigate.cli.main`):
stdout data in every format, one-line errors on stderr, documented exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from investigation_fixtures import at, request_records, write_jsonl
from typer.testing import CliRunner

from mlinvestigate.cli import app, main

pytest_plugins = ["investigation_fixtures"]

COMMANDS = ["summary", "slow", "latency", "loads", "errors", "throughput"]


def mlinv(args: list[str], capsys: pytest.CaptureFixture[str],
          monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """Run `mlinv ARGS` in-process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["mlinv", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err


@pytest.mark.parametrize("command", COMMANDS)
def test_table_and_json(command: str, sample_db: Path, capsys, monkeypatch):
    code, table, err = mlinv([command, "--db", str(sample_db)], capsys, monkeypatch)
    assert code == 0, err
    assert table.strip()
    code, text, err = mlinv([command, "--db", str(sample_db), "--format", "json"],
                            capsys, monkeypatch)
    assert code == 0, err
    records = json.loads(text)
    assert records
    keys = set(records[0])
    assert all(key == key.lower() and " " not in key for key in keys)
    assert all(set(r) == keys for r in records)


def test_json_keys_are_the_result_columns(sample_db: Path, capsys, monkeypatch):
    code, text, _ = mlinv(["summary", "--db", str(sample_db), "-f", "json"], capsys, monkeypatch)
    assert code == 0
    assert list(json.loads(text)[0]) == [
        "model_id", "model_version", "service", "requests", "mean_per_min", "peak_per_min",
        "p50", "p95", "p99", "p99_9", "max", "error_pct", "top_error", "top_error_pct",
        "slow_pct", "first_seen", "last_seen", "change", "verdict", "reason"]


def test_trace_table_and_json(sample_db: Path, sample_con, capsys, monkeypatch):
    request_id = sample_con.execute(
        "SELECT request_id FROM events WHERE status_code = 504 LIMIT 1").fetchone()[0]
    code, table, err = mlinv(["trace", request_id, "--db", str(sample_db)], capsys, monkeypatch)
    assert code == 0, err
    assert "missing hop" in table and "█" in table
    code, text, _ = mlinv(["trace", request_id[:11], "--db", str(sample_db), "-f", "json"],
                          capsys, monkeypatch)
    assert code == 0
    assert [r["event"] for r in json.loads(text)] == ["request_start", "request_failure"]


def test_ambiguous_trace_prefix_lists_candidates(sample_db: Path, capsys, monkeypatch):
    code, out, err = mlinv(["trace", "req-", "--db", str(sample_db)], capsys, monkeypatch)
    assert code == 2 and not out
    assert err.startswith("mlinv: error: 'req-' matches") and err.count("\n") == 1


@pytest.mark.parametrize("args", [
    ["summary", "--model", "no-such-model"],
    ["trace", "no-such-request"],
    ["errors", "--where", "status_code = 999"],
])
def test_empty_results_exit_1_with_a_message(args, sample_db: Path, capsys, monkeypatch):
    code, out, err = mlinv([*args, "--db", str(sample_db)], capsys, monkeypatch)
    assert code == 1
    assert not out
    assert err.startswith("mlinv: ") and err.count("\n") == 1


@pytest.mark.parametrize("command", ["summary", "slow", "throughput"])
def test_events_without_request_lines_are_explained(command: str, tmp_path: Path, capsys,
                                                    monkeypatch):
    """An arrival trace (time and sizes, no latency, no event name) is not "no events"."""
    log = tmp_path / "arrivals.jsonl"
    log.write_text("".join(json.dumps({"timestamp": 1768262400 + n, "input_length": 100 + n})
                           + "\n" for n in range(5)))
    code, out, err = mlinv([command, "--logs", str(log)], capsys, monkeypatch)
    assert code == 1 and not out
    assert err == ("mlinv: none of the 5 events (all events) is a request line: one with a "
                   "latency (latency_ms, duration_ms … or a field mapped with `mlinv ingest --map "
                   "latency_ms=PATH`) or a finishing event name (…_success, …_failure, "
                   "prediction …)\n")


@pytest.mark.parametrize("args", [
    ["summary", "--since", "yesterday-ish"],
    ["slow", "--until", "2026-13-45"],
    ["slow", "--threshold", "fast"],
    ["latency", "--buckets", "10,1"],
    ["errors", "--every", "0s"],
    ["throughput", "--capacity", "lots"],
    ["loads", "--window", "-5m"],
    ["slow", "--by", "nonsense"],
    ["summary", "--max-error", "infrastructure"],
    ["slow", "--format", "yaml"],
    ["slow", "--where", "1; DROP TABLE events"],
    ["summary", "--where", "input_size >"],
    ["slow", "--limit", "0"],
])
def test_bad_options_exit_2_with_one_line(args, sample_db: Path, capsys, monkeypatch):
    code, out, err = mlinv([*args, "--db", str(sample_db)], capsys, monkeypatch)
    assert code == 2, err
    assert not out
    assert err.strip() and "Traceback" not in err


def test_where_injection_leaves_the_database_intact(sample_db: Path, sample_con, capsys,
                                                    monkeypatch):
    before = sample_con.execute("SELECT count(*) FROM events").fetchone()[0]
    code, _, err = mlinv(["slow", "--db", str(sample_db), "--where", "1; DROP TABLE events"],
                         capsys, monkeypatch)
    assert code == 2 and "';'" in err
    assert sample_con.execute("SELECT count(*) FROM events").fetchone()[0] == before


def test_logs_option_reads_a_small_file(tmp_path: Path, capsys, monkeypatch):
    records = []
    for i in range(5):
        records += request_records(f"req-{i}", at(1, 0, i), model_ms=10.0 + i,
                                   gateway_ms=20.0 + i)
    log = write_jsonl(tmp_path / "small.jsonl", records)
    code, text, err = mlinv(["slow", "--logs", str(log), "-f", "json", "--by", "service"],
                            capsys, monkeypatch)
    assert code == 0, err
    by_service = {r["service"]: r for r in json.loads(text)}
    assert by_service["model-server"]["requests"] == 5
    assert by_service["model-server"]["p50"] == pytest.approx(12.0)
    code, text, _ = mlinv(["summary", "--logs", str(log), "-f", "csv"], capsys, monkeypatch)
    assert code == 0 and text.startswith("model_id,model_version,service,requests")


def test_filters_and_since_relative_to_the_newest_event(sample_db: Path, capsys, monkeypatch):
    code, text, _ = mlinv(["errors", "--db", str(sample_db), "--since", "30m", "--every", "5m",
                           "-f", "json"], capsys, monkeypatch)
    assert code == 0
    starts = {r["interval_start"] for r in json.loads(text)}
    assert min(starts) >= "2026-01-13T03:25:00Z"
    assert any(r["error_category"] == "timeout" for r in json.loads(text))


@pytest.mark.parametrize("command", [*COMMANDS, "trace"])
def test_help_has_a_real_example(command: str):
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert f"Example:  mlinv {command}" in result.output


def test_section_as_json_by_word_or_number(sample_db: Path, capsys, monkeypatch):
    code, text, err = mlinv(["slow", "--db", str(sample_db), "-f", "json", "--section", "slowest"],
                            capsys, monkeypatch)
    assert code == 0, err
    rows = json.loads(text)
    assert rows and all(r["request_id"] and r["latency_ms"] is not None for r in rows)
    code, by_number, _ = mlinv(["slow", "--db", str(sample_db), "-f", "json", "--section", "1"],
                               capsys, monkeypatch)
    assert code == 0 and by_number == text


@pytest.mark.parametrize(("args", "listed"), [
    (["slow", "--section", "nosuch"], "the tables are 1 (Slowest 20 requests)"),
    (["slow", "--section", "2"], "the tables are 1 (Slowest 20 requests)"),
    (["summary", "--section", "x"], "has no extra tables"),  # no labels in the sample
])
def test_unknown_section_exits_2_with_one_line(args, listed, sample_db: Path, capsys, monkeypatch):
    code, out, err = mlinv([*args, "--db", str(sample_db), "-f", "json"], capsys, monkeypatch)
    assert code == 2 and not out
    assert err.startswith("mlinv: error: ") and err.count("\n") == 1
    assert listed in err


def test_section_as_csv_and_table(sample_db: Path, capsys, monkeypatch):
    args = ["drift", "--db", str(sample_db), "--model", "fraud", "--every", "10m", "--feature",
            "features.amount"]
    code, text, err = mlinv([*args, "-f", "csv", "--section", "per interval"], capsys, monkeypatch)
    assert code == 0, err
    lines = text.splitlines()
    assert lines[0].startswith("interval_start,feature,n,")
    assert len(lines) > 2 and all(",features.amount," in line for line in lines[1:])
    code, table, err = mlinv([*args, "--section", "1"], capsys, monkeypatch)
    assert code == 0, err
    assert "Per interval" in table and "features.amount" in table
    assert "onset" not in table  # a column of the main table only


def test_an_empty_chosen_table_exits_1(capsys):
    import typer

    from mlinvestigate.cli.common import emit
    from mlinvestigate.result import Result

    result = Result("Main", ["a"], [(1,)], sections=[Result("Nothing here", ["b"], [])])
    with pytest.raises(typer.Exit) as exited:
        emit(result, "json", section="nothing")
    assert exited.value.exit_code == 1
    assert capsys.readouterr().err == "mlinv: the table 'Nothing here' has no rows\n"
