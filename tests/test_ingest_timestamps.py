"""Timestamps: ISO-8601 in any offset, epoch numbers of any unit, records without a time, and
results that do not depend on the machine's time zone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from ingest_helpers import NEUTRAL_DIR, ingest, ingest_records, ingest_text, utc, write_log

T = utc(2026, 1, 13, 2, 47, 0, 123456)
"""2026-01-13T02:47:00.123456Z = 1768272420.123456 s since the epoch."""


ISO_CASES: list[tuple[str, datetime]] = [
    ("2026-01-13T02:47:00.123456Z", T),
    ("2026-01-13T02:47:00Z", utc(2026, 1, 13, 2, 47)),
    ("2026-01-13T04:47:00.123456+02:00", T),
    ("2026-01-12T21:17:00.123456-05:30", T),
    ("2026-01-13T08:17:00.123456+0530", T),
    ("2026-01-13T02:47:00.123456+00:00", T),
    ("2026-01-13T02:47:00.123456", T),  # no offset: UTC
    ("2026-01-13 02:47:00.123456", T),
    ("2026-01-13T02:47:00", utc(2026, 1, 13, 2, 47)),  # isoformat() drops a zero fraction
    ("2026-01-13T02:47:00.123456789Z", T),  # nanoseconds: truncated to µs
    ("2026-01-13T02:47:00.5Z", utc(2026, 1, 13, 2, 47, 0, 500000)),
    ("2026-01-13 02:47:00,123", utc(2026, 1, 13, 2, 47, 0, 123000)),  # Python asctime
]


def test_iso_timestamps_are_converted_to_utc(tmp_path: Path) -> None:
    """ISO-8601 with Z, any offset (converted to UTC) or none (read as UTC), all in one file."""
    got = ingest_records(tmp_path, [{"event": value, "timestamp": value} for value, _ in ISO_CASES])
    wrong = [(e["event"], e["ts"], expected) for e, (_, expected) in zip(got.events, ISO_CASES, strict=True)
             if (e["ts"], e["ts_inferred"]) != (expected, False)]
    assert wrong == []


def test_iso_with_and_without_fraction_in_one_file(tmp_path: Path) -> None:
    """Python's isoformat() drops a zero fraction: both spellings in one file parse."""
    micros = (0, 1, 500000, 0, 999999)
    values = [datetime(2026, 1, 13, 2, 47, 0, us).isoformat() + "Z" for us in micros]
    got = ingest_records(tmp_path, [{"event": "p", "timestamp": v} for v in values])
    assert [e["ts"] for e in got.events] == [utc(2026, 1, 13, 2, 47, 0, us) for us in micros]


EPOCH_CASES: list[tuple[float | str, datetime]] = [
    (1768272420, utc(2026, 1, 13, 2, 47)),
    (1768272420.123456, T),
    (1768272420123, utc(2026, 1, 13, 2, 47, 0, 123000)),
    (1768272420123456, T),
    (1768272420123456789, T),
    ("1768272420", utc(2026, 1, 13, 2, 47)),
    ("1768272420.123456", T),
    ("1768272420123", utc(2026, 1, 13, 2, 47, 0, 123000)),
    ("1768272420123456", T),
    ("1768272420123456789", T),
    (1768272420.5e3, utc(2026, 1, 13, 2, 47, 0, 500000)),  # ms as a float
]


def test_epoch_numbers_detected_by_magnitude(tmp_path: Path) -> None:
    """Epoch seconds, ms, µs and ns, as JSON numbers or numeric strings, mixed in one file."""
    got = ingest_records(tmp_path, [{"event": repr(value), "ts": value} for value, _ in EPOCH_CASES])
    wrong = [(e["event"], e["ts"], expected) for e, (_, expected) in zip(got.events, EPOCH_CASES, strict=True)
             if e["ts"] != expected]
    assert wrong == []


def test_time_keys_of_common_loggers(tmp_path: Path) -> None:
    """timestamp, @timestamp, time, ts, asctime, datetime all feed ts."""
    keys = ["timestamp", "@timestamp", "time", "ts", "asctime", "datetime"]
    got = ingest_records(tmp_path, [{"event": k, k: "2026-01-13T02:47:00.123456Z"} for k in keys])
    assert [e["ts"] for e in got.events] == [T] * len(keys)


def test_unparseable_time_is_flagged_and_inferred(tmp_path: Path) -> None:
    """A time that cannot be read counts as missing: previous time, flagged, text kept in attrs."""
    got = ingest_records(tmp_path, [
        {"event": "a", "timestamp": "2026-01-13T02:47:00Z"},
        {"event": "b", "timestamp": "yesterday at noon"},
    ])
    b = got.events[1]
    assert (b["ts"], b["ts_inferred"]) == (utc(2026, 1, 13, 2, 47), True)
    assert json.loads(b["attrs"])["timestamp"] == "yesterday at noon"


def _untimed_lines(count: int, every: int) -> tuple[list[str], list[tuple[datetime, bool]]]:
    """Records where one in `every` has a time; the expected (ts, ts_inferred) of each."""
    lines, expected = [], []
    current = None
    for i in range(count):
        if i % every == 0:
            second = (i // every) % 60
            current = utc(2026, 1, 13, 2, 47) if current is None else current.replace(second=second)
            lines.append(json.dumps({"event": f"e{i}", "timestamp": current.isoformat() + "Z"}))
            expected.append((current, False))
        else:
            lines.append(json.dumps({"event": f"e{i}", "note": "x" * (i % 13)}))
            expected.append((current, True))
    return lines, expected


def test_missing_time_takes_previous_across_batch_boundaries(tmp_path: Path) -> None:
    """A record without a time takes the previous record's, flagged, also across batch boundaries."""
    lines, expected = _untimed_lines(150, every=37)
    lines.insert(0, json.dumps({"event": "first, no time at all"}))
    got = ingest_text(tmp_path, lines, chunk_bytes=500)  # about 10 lines a batch
    assert (tmp_path / "app.log").stat().st_size > 8 * 500
    first, *rest = got.events
    assert (first["ts"], first["ts_inferred"]) == (None, False)
    assert [(e["ts"], e["ts_inferred"]) for e in rest] == expected
    assert got.report.flags["ts_inferred"] == sum(1 for _, inferred in expected if inferred)
    assert got.report.flags["ts_missing"] == 1


def test_missing_time_takes_previous_across_a_resumed_ingest(tmp_path: Path) -> None:
    """Lines appended later without a time take the last time of the previous ingest."""
    db = tmp_path / "db.duckdb"
    log = write_log(tmp_path, "app.log", [json.dumps({"event": "a", "timestamp": "2026-01-13T02:47:00Z"}),
                                          json.dumps({"event": "b"})])
    ingest([log], db=db)
    with log.open("a") as f:
        f.write(json.dumps({"event": "c"}) + "\n" + json.dumps({"event": "d", "level": "info"}) + "\n")
    got = ingest([log], db=db)
    assert got.report.sources[0].status == "resumed"
    assert [(e["line"], e["ts"], e["ts_inferred"]) for e in got.events] == [
        (1, utc(2026, 1, 13, 2, 47), False), (2, utc(2026, 1, 13, 2, 47), True),
        (3, utc(2026, 1, 13, 2, 47), True), (4, utc(2026, 1, 13, 2, 47), True),
    ]


def test_results_do_not_depend_on_the_machine_time_zone(tmp_path: Path) -> None:
    """Ingest and query under TZ=America/Los_Angeles give the UTC values."""
    log = write_log(tmp_path, "tz.log", [
        json.dumps({"event": "z", "timestamp": "2026-01-13T23:30:00Z"}),
        json.dumps({"event": "naive", "timestamp": "2026-01-13T23:30:00"}),
        json.dumps({"event": "offset", "timestamp": "2026-01-13T15:30:00-08:00"}),
        json.dumps({"event": "epoch", "timestamp": 1768347000}),
        json.dumps({"event": "asctime", "asctime": "2026-01-13 23:30:00,000"}),
    ])
    db = tmp_path / "tz.duckdb"
    query = ("SELECT event, strftime(ts, '%Y-%m-%d %H:%M:%S') AS ts_text, epoch(ts) AS epoch_s, "
             "date_trunc('day', ts)::DATE::VARCHAR AS day, hour(ts) AS hour FROM events ORDER BY line")
    # One process runs both commands, under the zone furthest from UTC in the test data's day.
    script = (
        "import sys, time\n"
        "from mlinvestigate.cli import main\n"
        "assert time.localtime(1768347000).tm_hour == 15, 'TZ not applied'\n"
        "for argv in (sys.argv[1:6], sys.argv[6:]):\n"
        "    sys.argv = ['mlinv', *argv]\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as exc:\n"
        "        assert not exc.code, exc.code\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "ingest", str(log), "--db", str(db), "--quiet",
         "sql", query, "--db", str(db), "--format", "json"],
        env={**os.environ, "TZ": "America/Los_Angeles"}, cwd=NEUTRAL_DIR, capture_output=True, text=True,
        timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert {r["ts_text"] for r in got} == {"2026-01-13 23:30:00"}
    assert {r["epoch_s"] for r in got} == {1768347000}
    assert {r["day"] for r in got} == {"2026-01-13"}
    assert {r["hour"] for r in got} == {23}
    assert [r["event"] for r in got] == ["z", "naive", "offset", "epoch", "asctime"]
