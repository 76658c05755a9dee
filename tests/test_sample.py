"""The sample-log generator: exact line counts, determinism, and the documented incidents."""

from __future__ import annotations

import gzip
import io
import json
import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlinvestigate.errors import UsageError
from mlinvestigate.sample import (
    DEFAULT_DURATION,
    DEFAULT_START,
    GenerationStats,
    generate,
    incidents,
)

LINES = 20_000


def at(hours: int, minutes: int = 0, seconds: int = 0) -> datetime:
    return DEFAULT_START + timedelta(hours=hours, minutes=minutes, seconds=seconds)


@dataclass
class Sample:
    raw: bytes
    stats: GenerationStats
    records: list[dict[str, Any]]  # parsed records, each with "_ts" (naive UTC) and "_line"
    other: list[bytes]  # physical lines that are not JSON records

    def events(self, *names: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["event"] in names]


def record_time(record: dict[str, Any]) -> datetime:
    ts = record["timestamp"]
    if isinstance(ts, str):  # gateway: ISO-8601 with Z
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).replace(tzinfo=None)
    return datetime(1970, 1, 1) + timedelta(microseconds=round(ts * 1e6))  # model-server epoch


def parse(raw: bytes) -> tuple[list[dict[str, Any]], list[bytes]]:
    records, other = [], []
    for line in raw.split(b"\n")[:-1]:
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            other.append(line)
            continue
        record["_line"] = line.decode("utf-8")
        record["_ts"] = record_time(record)
        records.append(record)
    return records, other


@pytest.fixture(scope="module")
def sample() -> Sample:
    out = io.BytesIO()
    stats = generate(out, LINES, seed=7)
    raw = out.getvalue()
    records, other = parse(raw)
    return Sample(raw, stats, records, other)


def generated(lines: int, **kwargs: Any) -> bytes:
    out = io.BytesIO()
    generate(out, lines, **kwargs)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# Shape of the output


def test_same_seed_same_bytes_other_seed_differs() -> None:
    first = generated(3000, seed=11)
    assert generated(3000, seed=11) == first
    assert generated(3000, seed=12) != first


@pytest.mark.parametrize("lines", [0, 1, 2, 5, 13, 100, 999, 1000, 4321])
@pytest.mark.parametrize("corrupt", [True, False])
def test_exact_physical_line_count(lines: int, corrupt: bool) -> None:
    out = io.BytesIO()
    stats = generate(out, lines, seed=3, corrupt=corrupt)
    raw = out.getvalue()
    assert raw.count(b"\n") == lines
    assert raw == b"" or raw.endswith(b"\n")
    assert stats.lines == lines
    assert sum(stats.events.values()) + stats.corrupted_lines + stats.blank_lines == lines
    if not corrupt:
        assert stats.corrupted_lines == stats.blank_lines == 0


@settings(max_examples=15, deadline=None)
@given(lines=st.integers(0, 2500), seed=st.integers(0, 2**32 - 1))
def test_line_count_property(lines: int, seed: int) -> None:
    assert generated(lines, seed=seed).count(b"\n") == lines


def test_stats_match_the_file(sample: Sample) -> None:
    assert sample.stats.lines == LINES
    assert Counter(r["event"] for r in sample.records) == Counter(
        {k: v for k, v in sample.stats.events.items() if v}
    )
    assert len(sample.other) == sample.stats.corrupted_lines + sample.stats.blank_lines
    assert sample.stats.bytes == len(sample.raw)


def test_records_are_json_dumps_default_style(sample: Sample) -> None:
    for record in sample.records:
        line = record.pop("_line")
        body = {k: v for k, v in record.items() if k != "_ts"}
        assert json.dumps(body) == line
        record["_line"] = line


def test_key_order_is_stable_per_event(sample: Sample) -> None:
    shapes: dict[tuple[str, str], set[tuple[str, ...]]] = {}
    for r in sample.records:
        keys = tuple(k for k in r if not k.startswith("_"))
        shapes.setdefault((r["service"], r["event"]), set()).add(keys)
    for (_, event), seen in shapes.items():
        assert len(seen) == 1, (event, seen)


def test_timestamps_inside_window_and_sorted(sample: Sample) -> None:
    times = [r["_ts"] for r in sample.records]
    assert min(times) >= DEFAULT_START
    assert max(times) < DEFAULT_START + DEFAULT_DURATION
    assert times == sorted(times)
    # Spread over the whole window whatever the line count.
    assert min(times) < at(0, 1) and max(times) > at(3, 59)


def test_timestamp_styles(sample: Sample) -> None:
    gateway = sample.events("request_start", "request_success", "request_failure")
    server = sample.events("prediction_success", "prediction_failure", "model_load_start")
    assert all(isinstance(r["timestamp"], str) and r["timestamp"].endswith("Z") for r in gateway)
    assert all(isinstance(r["timestamp"], float) for r in server)
    # isoformat() drops a zero fraction; some gateway lines show that.
    assert any(len(r["timestamp"]) == len("2026-01-13T02:47:01Z") for r in gateway)


def test_window_follows_start_and_duration() -> None:
    start = datetime(2025, 6, 1, 22, 0, tzinfo=UTC)
    records, _ = parse(generated(2000, start=start, duration=timedelta(minutes=10)))
    times = [r["_ts"] for r in records]
    assert datetime(2025, 6, 1, 22, 0) <= min(times) and max(times) < datetime(2025, 6, 1, 22, 10)


def test_bad_arguments() -> None:
    with pytest.raises(UsageError):
        generate(io.BytesIO(), -1)
    with pytest.raises(UsageError):
        generate(io.BytesIO(), 10, duration=timedelta(seconds=5))


# ---------------------------------------------------------------------------------------------
# Compressed output


def test_gzip_output_is_readable_and_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    generate(a, 2000, seed=5)
    generate(b, 2000, seed=5)
    assert a.read_bytes() == b.read_bytes()
    header = a.read_bytes()[:10]
    assert header[3] & 0x08 == 0  # no file name stored
    assert header[4:8] == b"\0\0\0\0"  # mtime 0
    with gzip.open(a, "rb") as f:
        assert f.read() == generated(2000, seed=5)


def test_zstd_output_is_readable(tmp_path: Path) -> None:
    zstandard = pytest.importorskip("zstandard")
    path = tmp_path / "a.jsonl.zst"
    generate(path, 1500, seed=5)
    with path.open("rb") as f:
        raw = zstandard.ZstdDecompressor().stream_reader(f).read()
    assert raw == generated(1500, seed=5)


def test_plain_path_output(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    generate(path, 500, seed=5)
    assert path.read_bytes() == generated(500, seed=5)


# ---------------------------------------------------------------------------------------------
# Requests across services


def test_request_ids_shared_across_services(sample: Sample) -> None:
    starts = {r["request_id"]: r for r in sample.events("request_start")}
    finishes = {r["request_id"]: r for r in sample.events("request_success", "request_failure")}
    server = sample.events("prediction_success", "prediction_failure")
    assert len(starts) == len(sample.events("request_start"))  # unique
    assert all(r["request_id"].startswith("req-") and len(r["request_id"]) == 14
               for r in starts.values())
    linked = 0
    for r in server:
        gw = starts.get(r["request_id"])
        if gw is None:  # its request_start is the corrupted line
            continue
        linked += 1
        assert r["model_id"] == gw["model_id"]
        assert r["trace_id"] == gw["trace_id"] and len(r["trace_id"]) == 32
        assert r["parent_span_id"] == gw["span_id"] and len(r["span_id"]) == 16
        end = finishes.get(r["request_id"])
        if end is None:  # still in flight when the log ends
            assert r["_ts"] > DEFAULT_START + DEFAULT_DURATION - timedelta(seconds=1)
            continue
        assert gw["_ts"] < r["_ts"] < end["_ts"]
        # gateway latency = model latency + a few ms of network and overhead
        assert 0 < end["latency_ms"] - r["latency_ms"] < 50
    assert linked > 0.95 * len(server)


# ---------------------------------------------------------------------------------------------
# The incidents, at their documented times


def test_incident_list() -> None:
    found = {i.name: i for i in incidents()}
    assert {i.kind for i in found.values()} == {
        "model_load_failures", "slow_input_class", "feature_drift", "timeouts",
        "input_validation", "corrupted_lines",
    }
    assert found["bad_deploy"].start == at(2, 47)
    assert found["bad_deploy"].model_version == "v2.1.0"
    assert found["fraud_amount_drift"].start == at(1, 48, 30)
    assert found["fraud_amount_drift"].feature == "amount"
    assert found["large_recsys_inputs"].start == at(2)
    assert (found["recsys_timeouts"].start, found["recsys_timeouts"].end) == (at(3, 40), at(3, 45))
    assert all(i.description for i in found.values())
    early = {i.name for i in incidents(duration=timedelta(hours=2, minutes=30))}
    assert "bad_deploy" not in early and "fraud_amount_drift" in early


def test_bad_deploy(sample: Sample) -> None:
    loads = [(r["event"], r["model_id"], r["version"], r["_ts"])
             for r in sample.events("model_load_start", "model_load_success")
             if r["model_id"] == "fraud"]
    assert loads[2][:3] == ("model_load_start", "fraud", "v2.1.0")
    assert at(2, 47) <= loads[2][3] < at(2, 47, 1)
    assert loads[3][:3] == ("model_load_success", "fraud", "v2.1.0")
    assert at(2, 47, 4) <= loads[3][3] < at(2, 47, 5)
    assert loads[4][:3] == ("model_load_start", "fraud", "v1.4.2")
    assert at(3, 20) <= loads[4][3] < at(3, 20, 1)

    fraud = [r for r in sample.events("prediction_success", "prediction_failure")
             if r["model_id"] == "fraud"]

    def runtime_error_rate(lo: datetime, hi: datetime) -> float:
        rows = [r for r in fraud if lo <= r["_ts"] < hi]
        return sum(r.get("error_type") == "RuntimeError" for r in rows) / len(rows)

    assert runtime_error_rate(DEFAULT_START, at(2, 48)) == 0
    assert 0.07 < runtime_error_rate(at(2, 48), at(3, 20)) < 0.2
    assert runtime_error_rate(at(3, 20, 5), at(4)) == 0
    failed = [r for r in fraud if r.get("error_type") == "RuntimeError"]
    assert {r["model_version"] for r in failed} == {"v2.1.0"}
    assert "device-side assert" in failed[0]["error_message"]
    gw_500 = [r for r in sample.events("request_failure") if r["status_code"] == 500]
    assert len(gw_500) >= len(failed) - 1


def test_recsys_canary_and_oom_load_failure(sample: Sample) -> None:
    failures = sample.events("model_load_failure")
    assert [(r["model_id"], r["version"]) for r in failures] == [("recsys", "v3.3.0")]
    assert at(0, 29) <= failures[0]["_ts"] < at(0, 30)
    recsys = [r for r in sample.events("prediction_success") if r["model_id"] == "recsys"]
    assert all(r["model_version"] == "v3.2.1" for r in recsys if r["_ts"] < at(0, 30))
    late = [r["model_version"] == "v3.3.0" for r in recsys if r["_ts"] > at(0, 31)]
    assert 0.1 < sum(late) / len(late) < 0.3


def test_feature_drift(sample: Sample) -> None:
    fraud = [r for r in sample.events("prediction_success") if r["model_id"] == "fraud"]
    before = [r for r in fraud if r["_ts"] < at(1, 48, 30)]
    after = [r for r in fraud if r["_ts"] >= at(1, 48, 30)]

    def median(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r["features"][key] for r in rows)

    assert median(after, "amount") > 2 * median(before, "amount")
    assert 0.85 < statistics.mean(r["confidence"] for r in before) < 0.95
    assert 0.65 < statistics.mean(r["confidence"] for r in after) < 0.75
    # The other features do not drift.
    ratio = median(after, "time_since_last") / median(before, "time_since_last")
    assert 0.8 < ratio < 1.25


def test_slow_input_class(sample: Sample) -> None:
    recsys = [r for r in sample.events("prediction_success")
              if r["model_id"] == "recsys" and not r["cache_hit"]]

    def large_share(rows: list[dict[str, Any]]) -> float:
        return sum(r["input_size"] > 1000 for r in rows) / len(rows)

    before = [r for r in recsys if r["_ts"] < at(2)]
    after = [r for r in recsys if r["_ts"] >= at(2)]
    assert large_share(before) < 0.05 and large_share(after) > 0.18
    small = statistics.median(r["latency_ms"] for r in recsys if r["input_size"] <= 1000)
    large = statistics.median(r["latency_ms"] for r in recsys if r["input_size"] > 1000)
    assert 6 < large / small < 15

    def p90(rows: list[dict[str, Any]]) -> float:
        return statistics.quantiles([r["latency_ms"] for r in rows], n=10)[-1]

    assert p90(after) > 3 * p90(before)


def test_timeouts(sample: Sample) -> None:
    timeouts = [r for r in sample.events("request_failure") if r["status_code"] == 504]
    assert timeouts
    for r in timeouts:
        assert r["model_id"] == "recsys" and r["error_type"] == "TimeoutError"
        assert 2000 <= r["latency_ms"] < 2010
        assert at(3, 40) <= r["_ts"] < at(3, 45, 3)
    # The model-server never finished those requests: no line for them.
    server_ids = {r["request_id"] for r in sample.events("prediction_success",
                                                         "prediction_failure")}
    assert not server_ids & {r["request_id"] for r in timeouts}
    burst = [r for r in sample.events("request_start")
             if r["model_id"] == "recsys" and at(3, 40) <= r["_ts"] < at(3, 45)]
    assert 0.08 < len(timeouts) / len(burst) < 0.35


def test_input_validation(sample: Sample) -> None:
    starts = sample.events("request_start")
    rejected = [r for r in sample.events("request_failure") if r["status_code"] == 422]
    assert 0.005 < len(rejected) / len(starts) < 0.02
    assert all(r["error_type"] == "ValueError" for r in rejected)
    assert all(r["error_message"].startswith("invalid input: field") for r in rejected)
    server = {r["request_id"]: r for r in sample.events("prediction_failure")
              if r["error_type"] == "ValueError"}
    assert {r["request_id"] for r in rejected} == set(server)
    fraud = [r for r in server.values() if r["model_id"] == "fraud"]
    assert fraud and all(r["features"]["amount"] < 0 for r in fraud)
    # Spread over the whole window.
    assert min(r["_ts"] for r in rejected) < at(1) and max(r["_ts"] for r in rejected) > at(3)


def test_corrupted_lines(sample: Sample) -> None:
    other = sample.other
    assert 0 < sample.stats.corrupted_lines < 0.002 * LINES
    assert b"" in other
    assert any(line.startswith(b"WARNING") for line in other)
    assert any(line.startswith(b"Traceback (most recent call last):") for line in other)
    assert any(line.startswith(b'{"') for line in other)  # a truncated or mis-encoded record
    invalid = []
    for line in other:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            invalid.append(line)
    assert len(invalid) == 1


def test_no_corruption_when_disabled() -> None:
    out = io.BytesIO()
    stats = generate(out, 5000, seed=7, corrupt=False)
    records, other = parse(out.getvalue())
    assert other == [] and stats.corrupted_lines == stats.blank_lines == 0
    assert len(records) == 5000
