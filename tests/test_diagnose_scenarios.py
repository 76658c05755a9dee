"""diagnose on generated deployments it was not written against: other services, models,
versions, field spellings, start times and rates, with incidents of each kind alone and
overlapping. The true cause must come first, at the right time."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pytest

from mlinvestigate import store
from mlinvestigate.diagnosis.causes import Cause
from mlinvestigate.diagnosis.diagnose import Diagnosis, run_diagnosis, to_result
from mlinvestigate.diagnosis.onsets import Finding
from mlinvestigate.diagnosis.scenarios import (
    BadDeploy,
    BadReplica,
    ClientSurge,
    Drift,
    Model,
    Scenario,
    SlowInputs,
    Timeouts,
    write,
)
from mlinvestigate.ingest.pipeline import ingest_paths
from mlinvestigate.investigations.filters import Filters

START_A = datetime(2025, 7, 2, 9, 0)
START_B = datetime(2024, 3, 9, 22, 40)


def _database(tmp_path_factory: pytest.TempPathFactory, scenario: Scenario, name: str
              ) -> duckdb.DuckDBPyConnection:
    path = write(scenario, tmp_path_factory.mktemp("diagnose") / f"{name}.jsonl")
    con = store.connect(store.MEMORY)
    ingest_paths(con, [str(path)])
    return con


@pytest.fixture(scope="module")
def slow_then_deploy_db(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    """A slow input class on one model and a bad deploy of another, 45 minutes apart."""
    scenario = Scenario(
        [Model("ranker", "v7", 0.6, latency_ms=25), Model("spam", "2024.06", 0.4, latency_ms=12)],
        [SlowInputs("ranker", 35), BadDeploy("spam", 80, "2024.07", rollback_at=100)],
        start=START_A, per_minute=45, seed=3)
    con = _database(tmp_path_factory, scenario, "slow_then_deploy")
    yield con
    con.close()


@pytest.fixture(scope="module")
def slow_then_deploy(slow_then_deploy_db: duckdb.DuckDBPyConnection) -> Diagnosis:
    return run_diagnosis(slow_then_deploy_db, Filters())


@pytest.fixture(scope="module")
def overlapping(tmp_path_factory: pytest.TempPathFactory) -> Diagnosis:
    """Drift on one model and timeouts on another three minutes later; then one bad pod."""
    scenario = Scenario(
        [Model("eta", "1.0", 0.5), Model("pricing", "3.1", 0.5)],
        [Drift("eta", 30), Timeouts("pricing", 33, 40), BadReplica("eta", "pod-c", 70, 95)],
        start=START_B, entry="api", server="ml", per_minute=45, seed=4)
    con = _database(tmp_path_factory, scenario, "overlapping")
    yield run_diagnosis(con, Filters())
    con.close()


@pytest.fixture(scope="module")
def client_then_slow_version(tmp_path_factory: pytest.TempPathFactory) -> Diagnosis:
    """A client that starts sending bad input in bulk, then a version that is 3x slower, with
    delayed labels."""
    scenario = Scenario(
        [Model("search", "s1", 1.0, latency_ms=40)],
        [ClientSurge("search", "partner", 25),
         BadDeploy("search", 70, "s2", failure_rate=0.0, slower=3.0, delay_s=0)],
        start=START_A, minutes=110, per_minute=40, labels=True, seed=5)
    con = _database(tmp_path_factory, scenario, "client_then_slow_version")
    yield run_diagnosis(con, Filters())
    con.close()


def _onset(diagnosis: Diagnosis, finding: Finding) -> datetime:
    moment = diagnosis.time_of(finding.onset)
    assert moment is not None
    return moment


def _near(moment: datetime, expected: datetime, tolerance: timedelta = timedelta(minutes=1)) -> bool:
    return abs(moment - expected) <= tolerance


def _top(diagnosis: Diagnosis, finding: Finding) -> Cause:
    causes = diagnosis.causes[finding.number]
    assert causes, f"no cause for finding {finding.number}"
    return causes[0]


def _finding(diagnosis: Diagnosis, model: str, onset: datetime) -> Finding:
    for finding in diagnosis.findings:
        if finding.model_id == model and _near(_onset(diagnosis, finding), onset):
            return finding
    found = [(f.model_id, diagnosis.time_of(f.onset)) for f in diagnosis.findings]
    raise AssertionError(f"no {model} finding near {onset}: {found}")


def test_slow_input_class_and_bad_deploy_are_two_findings(slow_then_deploy: Diagnosis):
    d = slow_then_deploy
    assert len(d.findings) == 2
    slow = _finding(d, "ranker", START_A + timedelta(minutes=35))
    deploy = _finding(d, "spam", START_A + timedelta(minutes=81))  # failures start 1 min after
    assert slow.primary.metric == "slow"
    top = _top(d, slow)
    assert top.kind == "input" and top.dimension == "input_size" and top.subject == 3  # 1000–9999
    assert top.explained is not None and top.explained >= 0.6
    assert "mlinv latency --by input_size" in top.next_command
    assert deploy.primary.metric == "errors" and deploy.primary.category == "model_inference"
    top = _top(d, deploy)
    assert top.kind == "deploy" and top.subject == "2024.07"
    assert top.at is not None and _near(top.at, START_A + timedelta(minutes=80), timedelta(seconds=10))
    assert "mlinv loads --model spam" in top.next_command
    # The rollback ends it.
    assert _near(d.time_of(deploy.recovery) or datetime.max, START_A + timedelta(minutes=100))


def test_each_finding_ranks_other_candidates_below_the_cause(slow_then_deploy: Diagnosis):
    d = slow_then_deploy
    for finding in d.findings:
        scores = [c.score for c in d.causes[finding.number]]
        assert scores == sorted(scores, reverse=True)
    deploy = _finding(d, "spam", START_A + timedelta(minutes=81))
    kinds = [c.kind for c in d.causes[deploy.number]]
    assert kinds.index("deploy") < kinds.index("error")
    error = next(c for c in d.causes[deploy.number] if c.kind == "error")
    assert error.subject == "RuntimeError" and error.examples
    assert error.next_command == f"mlinv trace {error.examples[0]}"


def test_drift_and_timeouts_overlapping_on_two_models(overlapping: Diagnosis):
    d = overlapping
    drift = _finding(d, "eta", START_B + timedelta(minutes=30))
    assert drift.primary.metric == "confidence"
    top = _top(d, drift)
    assert top.kind == "drift" and top.subject == "features.basket_value"
    assert "mlinv drift --model eta --feature features.basket_value" in top.next_command
    timeouts = _finding(d, "pricing", START_B + timedelta(minutes=33))
    assert timeouts.primary.category == "timeout"
    top = _top(d, timeouts)
    assert top.kind == "error" and top.subject == "TimeoutError"
    assert "missing hop" in top.detail
    assert _near(d.time_of(timeouts.recovery) or datetime.max, START_B + timedelta(minutes=40))


def test_one_bad_replica(overlapping: Diagnosis):
    d = overlapping
    replica = _finding(d, "eta", START_B + timedelta(minutes=70))
    top = _top(d, replica)
    assert top.kind == "replica" and top.subject == "pod-c" and top.dimension == "attrs.pod"
    assert "--by error_category,attrs.pod" in top.next_command


def test_client_surge_and_slow_version(client_then_slow_version: Diagnosis):
    d = client_then_slow_version
    surge = _finding(d, "search", START_A + timedelta(minutes=25))
    top = _top(d, surge)
    assert top.kind == "input" and top.subject == "partner" and top.dimension == "attrs.client"
    slow = _finding(d, "search", START_A + timedelta(minutes=70))
    assert slow.primary.metric == "slow"
    top = _top(d, slow)
    assert top.kind == "deploy" and top.subject == "s2"
    # Delayed labels: the slower version is also less accurate (a lagging signal).
    assert "accuracy (lagging" in top.detail


def test_accuracy_by_version_in_the_result(client_then_slow_version: Diagnosis):
    accuracy = client_then_slow_version.accuracy
    assert accuracy is not None
    rows = {r["model_version"]: r for r in accuracy.records()}
    assert rows["s1"]["accuracy_pct"] > 85 and rows["s2"]["accuracy_pct"] < 70
    assert {r["signal"] for r in rows.values()} == {"lagging"}
    result = to_result(client_then_slow_version)
    assert any(s.title.startswith("Accuracy by model version") for s in result.sections)


def test_no_incident_no_finding(tmp_path_factory: pytest.TempPathFactory):
    scenario = Scenario([Model("quiet", "1", 1.0)], [], minutes=60, per_minute=30, seed=9)
    con = _database(tmp_path_factory, scenario, "quiet")
    try:
        diagnosis = run_diagnosis(con, Filters())
    finally:
        con.close()
    assert diagnosis.findings == []
    assert to_result(diagnosis).rows == []


def test_at_puts_the_trouble_under_way_first(slow_then_deploy_db: duckdb.DuckDBPyConnection):
    diagnosis = run_diagnosis(slow_then_deploy_db, Filters(), at=START_A + timedelta(minutes=85))
    first = diagnosis.findings[0]
    assert first.model_id == "spam"
    assert _top(diagnosis, first).kind == "deploy"
    assert any("--at" in note for note in diagnosis.notes)
