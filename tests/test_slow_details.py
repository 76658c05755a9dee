"""`slow`'s slowest requests take version and input size from the request's other lines,
looked for around the chosen lines' time: absurd latencies must not break that bound."""

from __future__ import annotations

import math

import pytest

from mlinvestigate import store
from mlinvestigate.investigations.filters import Filters
from mlinvestigate.investigations.slow import slow


@pytest.mark.parametrize("latency_ms", [1e15, -5.0, math.nan, math.inf, 2500.0])
def test_slowest_requests_get_their_model_server_details_whatever_the_latency(latency_ms: float) -> None:
    con = store.connect(store.MEMORY)
    rows = [
        # The gateway's line has the latency; the model-server's line, a second earlier, the version.
        ("2026-01-13 02:47:01", "gateway", None, None, "req-1", latency_ms),
        ("2026-01-13 02:47:00", "model-server", "v2.1.0", 512, "req-1", 20.0),
        # Far away in time: a line of another request.
        ("2026-01-13 05:00:00", "model-server", "v1.4.2", 3, "req-2", 10.0),
    ]
    for ts, service, version, size, request_id, latency in rows:
        con.execute(
            "INSERT INTO events (ts, service, model_version, input_size, request_id, latency_ms, event)"
            " VALUES ($ts::TIMESTAMP, $service, $version, $size, $rid, $lat, 'request_success')",
            {"ts": ts, "service": service, "version": version, "size": size, "rid": request_id,
             "lat": latency},
        )
    result = slow(con, Filters(service="gateway", limit=5), threshold_ms=500)
    slowest = result.sections[0].records()
    assert [r["request_id"] for r in slowest] == ["req-1"]
    assert slowest[0]["model_version"] == "v2.1.0"
    assert slowest[0]["input_size"] == 512


def test_slowest_requests_at_the_edges_of_the_datetime_range() -> None:
    con = store.connect(store.MEMORY)
    for ts, rid in (("0001-01-01 00:00:10", "req-early"), ("9999-12-31 23:59:50", "req-late")):
        con.execute("INSERT INTO events (ts, service, request_id, latency_ms, event) VALUES "
                    "($ts::TIMESTAMP, 'gateway', $rid, 900.0, 'request_success')", {"ts": ts, "rid": rid})
    slowest = slow(con, Filters(limit=5), threshold_ms=500).sections[0].records()
    assert sorted(r["request_id"] for r in slowest) == ["req-early", "req-late"]
