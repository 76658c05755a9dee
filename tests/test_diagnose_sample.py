"""`mlinv diagnose` and `mlinv report` on the generated sample (sample_logs/README.md lists its
incidents), through the core functions and the real entry point."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from investigation_fixtures import at

from mlinvestigate.diagnosis.diagnose import Diagnosis, run_diagnosis, to_result
from mlinvestigate.diagnosis.report import build_report
from mlinvestigate.investigations.filters import Filters
from mlinvestigate.output import to_text

pytest_plugins = ["investigation_fixtures"]


@pytest.fixture(scope="module")
def diagnosis(sample_con: duckdb.DuckDBPyConnection) -> Diagnosis:
    return run_diagnosis(sample_con, Filters())


def mlinv(args: list[str], capsys: pytest.CaptureFixture[str],
          monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    from mlinvestigate.cli import main

    monkeypatch.setattr(sys, "argv", ["mlinv", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err


# (model, onset, metric, top cause kind, subject) per documented incident. The drift starts at
# 01:48:30, mid-interval: its onset is 01:48 or 01:49 (precision: one interval).
EXPECTED = [
    ("fraud", at(1, 48, 30), "confidence", "drift", "features.amount"),
    ("recsys", at(2, 0), "slow", "input", 3),
    ("fraud", at(2, 48), "errors", "deploy", "v2.1.0"),
    ("recsys", at(3, 40), "errors", "error", "TimeoutError"),
]


def test_the_four_incidents_with_their_true_causes_first(diagnosis: Diagnosis):
    assert len(diagnosis.findings) == len(EXPECTED)
    for finding, (model, onset, metric, kind, subject) in zip(diagnosis.findings, EXPECTED,
                                                            strict=True):
        assert finding.model_id == model
        found = diagnosis.time_of(finding.onset)
        assert found is not None and abs(found - onset) <= timedelta(seconds=30)
        assert finding.primary.metric == metric
        top = diagnosis.causes[finding.number][0]
        assert (top.kind, top.subject) == (kind, subject), top


def test_bad_deploy_times_and_numbers(diagnosis: Diagnosis):
    deploy = diagnosis.findings[2]
    top = diagnosis.causes[deploy.number][0]
    assert top.at == at(2, 47, 4.213408)
    assert "55.8 s before the onset" in top.title
    assert top.explained is not None and top.explained > 0.8
    assert deploy.primary.category == "model_inference"
    # The rollback at 03:20:04 ends it: back to normal in that interval or the next.
    assert diagnosis.time_of(deploy.recovery) in (at(3, 20), at(3, 21))
    assert any(load.version == "v1.4.2" and load.at == at(3, 20, 3.904771) for load in diagnosis.loads)


def test_timeouts_are_the_gateway_with_missing_hops(diagnosis: Diagnosis):
    timeouts = diagnosis.findings[3]
    assert diagnosis.time_of(timeouts.recovery) == at(3, 45)
    causes = diagnosis.causes[timeouts.number]
    assert "missing hop" in causes[0].detail and "status 504" in causes[0].detail
    assert causes[0].next_command.startswith("mlinv trace req-")
    assert any(c.kind == "service" and c.title == "only gateway shows it" for c in causes)


def test_the_result_and_its_sections(diagnosis: Diagnosis):
    result = to_result(diagnosis)
    assert result.columns[:4] == ["finding", "onset", "peak", "recovered"]
    assert [row[0] for row in result.rows] == [1, 2, 3, 4]
    titles = [s.title for s in result.sections]
    assert "Finding 3 (02:48:00, fraud): causes ranked" in titles
    assert "Model loads in the window" in titles
    assert result.notes[2].startswith("3. from 02:48:00 until 03:2")
    assert "model_inference errors 0 % → " in result.notes[2]
    text = to_text(result, "markdown")
    assert "| finding | onset |" in text


def test_at_puts_the_deploy_first(sample_con: duckdb.DuckDBPyConnection):
    d = run_diagnosis(sample_con, Filters(), at=at(2, 50))
    first = d.findings[0]
    assert first.model_id == "fraud" and d.causes[first.number][0].kind == "deploy"
    assert {f.model_id for f in d.findings} == {"fraud", "recsys"}


def test_filters_narrow_the_diagnosis(sample_con: duckdb.DuckDBPyConnection):
    d = run_diagnosis(sample_con, Filters(model="recsys"))
    assert [f.model_id for f in d.findings] == ["recsys", "recsys"]
    d = run_diagnosis(sample_con, Filters(since=at(3, 30), until=at(4)))
    assert [(f.model_id, d.time_of(f.onset)) for f in d.findings] == [("recsys", at(3, 40))]


def test_report_is_a_postmortem(sample_con: duckdb.DuckDBPyConnection, diagnosis: Diagnosis):
    text = build_report(sample_con, diagnosis)
    for heading in ("# Incident report: 2026-01-13", "## Summary", "## Timeline",
                    "## Finding 3: fraud, 02:48:00", "### Ranked causes", "### Evidence:",
                    "### Per interval around the onset", "### Example request req-",
                    "## Model loads", "## Ingest accounting", "## Reproduce"):
        assert heading in text, heading
    assert "model load: fraud v2.1.0 at model-server, success" in text
    assert "rejected lines kept" in text
    assert "`mlinv trace req-" in text and "`mlinv sql \"SELECT" in text
    assert "mlinv loads --model fraud" in text


def test_cli_diagnose_formats(sample_db: Path, capsys, monkeypatch):
    code, out, err = mlinv(["diagnose", "--db", str(sample_db), "-f", "json"], capsys, monkeypatch)
    assert code == 0, err
    rows = json.loads(out)
    assert [r["onset"] for r in rows][1:] == ["2026-01-13T02:00:00Z", "2026-01-13T02:48:00Z",
                                              "2026-01-13T03:40:00Z"]
    code, out, err = mlinv(["diagnose", "--db", str(sample_db), "--causes", "-f", "csv"],
                           capsys, monkeypatch)
    assert code == 0, err
    assert out.splitlines()[0].startswith("finding,onset,model,rank,kind,cause,score")
    code, out, err = mlinv(["diagnose", "--db", str(sample_db), "--at", "03:42", "-f", "markdown"],
                           capsys, monkeypatch)
    assert code == 0, err
    assert "| 1 | 2026-01-13T03:40:00Z" in out


def test_cli_report_to_a_file(sample_db: Path, tmp_path: Path, capsys, monkeypatch):
    target = tmp_path / "postmortem.md"
    code, _, err = mlinv(["report", "--db", str(sample_db), "--since", "2026-01-13T02:30",
                          "--until", "2026-01-13T03:30", "--out", str(target)], capsys, monkeypatch)
    assert code == 0, err
    text = target.read_text(encoding="utf-8")
    assert "## Finding 1: fraud" in text
    assert "mlinv diagnose --since 2026-01-13T02:30 --until 2026-01-13T03:30 --db" in text


@pytest.mark.parametrize("args, code, message", [
    (["--at", "25:00"], 2, "cannot read --at"),
    (["--at", "2020-01-01"], 2, "outside the events"),
    (["--format", "yaml"], 2, "unknown --format"),
    (["--since", "2026-01-13T00:10", "--until", "2026-01-13T00:40"], 1, "no trouble found"),
    (["--model", "nope"], 1, "no events match"),
])
def test_cli_errors_and_empty(args, code, message, sample_db: Path, capsys, monkeypatch):
    got, out, err = mlinv(["diagnose", "--db", str(sample_db), *args], capsys, monkeypatch)
    assert got == code
    assert message in err and not out
    assert len(err.strip().splitlines()) == 1


def test_cli_empty_database(tmp_path: Path, capsys, monkeypatch):
    from mlinvestigate import store

    db = tmp_path / "empty.duckdb"
    store.connect(str(db)).close()
    code, _, err = mlinv(["diagnose", "--db", str(db)], capsys, monkeypatch)
    assert code == 1 and "no events in the database" in err


def test_interval_option(sample_db: Path, capsys, monkeypatch):
    code, out, err = mlinv(["diagnose", "--db", str(sample_db), "--interval", "5m", "-f", "json"],
                           capsys, monkeypatch)
    assert code == 0, err
    onsets = [r["onset"] for r in json.loads(out)]
    assert "2026-01-13T02:45:00Z" in onsets  # the deploy, at 5-minute precision
