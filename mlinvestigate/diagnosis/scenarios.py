"""Incident scenarios for testing diagnose on logs it has never seen.

`mlinv sample` writes one fixed deployment (gateway, model-server, fraud, recsys) with fixed
incidents. Here the deployment is a parameter: other service and model names, versions, start
time, traffic, field spellings (`req_id`, `model`, `elapsed_ms`, `input_tokens`, epoch `time`),
a replica field (`pod`), a client and categorical and numeric inputs; incidents of each kind are
placed at chosen times, alone or overlapping:

* SlowInputs: large inputs are always `slowdown` times slower; at `at` their share jumps.
* BadDeploy: a new version is loaded; `delay` later a share of its predictions fail (or it is
  `slower`); an optional rollback loads the old version again.
* Drift: a numeric input shifts by `factor` and confidence falls by `confidence_drop`.
* Timeouts: the entry service times out a share of requests; the model service logs nothing.
* BadReplica: one pod fails a share of its requests.
* ClientSurge: one client's share jumps and its requests fail validation.

Delayed labels (`label` events with the true outcome, minutes later) are optional.
The output is deterministic for a seed. It is a test tool: a few tens of thousands of requests,
generated in plain Python.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Model:
    name: str
    version: str
    share: float
    latency_ms: float = 30.0
    size_median: float = 150.0
    large_share: float = 0.02
    accuracy: float = 0.92


@dataclass(frozen=True)
class SlowInputs:
    model: str
    at: float
    """Minutes after the start."""
    share_after: float = 0.3
    slowdown: float = 10.0


@dataclass(frozen=True)
class BadDeploy:
    model: str
    at: float
    version: str
    failure_rate: float = 0.15
    delay_s: float = 60.0
    rollback_at: float | None = None
    slower: float = 1.0
    accuracy: float = 0.6
    error_type: str = "RuntimeError"
    message: str = "CUDA error: an illegal memory access was encountered"


@dataclass(frozen=True)
class Drift:
    model: str
    at: float
    factor: float = 3.0
    confidence_drop: float = 0.2


@dataclass(frozen=True)
class Timeouts:
    model: str
    at: float
    until: float
    rate: float = 0.25
    timeout_ms: float = 3000.0


@dataclass(frozen=True)
class BadReplica:
    model: str
    pod: str
    at: float
    until: float | None = None
    failure_rate: float = 0.3


@dataclass(frozen=True)
class ClientSurge:
    model: str
    client: str
    at: float
    share_after: float = 0.3
    failure_rate: float = 0.4


Incident = SlowInputs | BadDeploy | Drift | Timeouts | BadReplica | ClientSurge


@dataclass
class Scenario:
    models: list[Model]
    incidents: list[Incident] = field(default_factory=list)
    start: datetime = datetime(2025, 7, 2, 9, 0, 0)
    minutes: int = 120
    per_minute: float = 60.0
    entry: str = "edge"
    server: str = "inference"
    pods: tuple[str, ...] = ("pod-a", "pod-b", "pod-c", "pod-d")
    clients: tuple[str, ...] = ("web", "ios", "android", "batch", "partner")
    labels: bool = False
    seed: int = 1


BASE_INVALID = 0.004
BASE_INFRA = 0.001


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds") + "Z"


def _epoch(moment: datetime) -> float:
    return round((moment - datetime(1970, 1, 1)).total_seconds(), 6)


def records(scenario: Scenario) -> list[dict[str, object]]:
    """Every log record of the scenario, in time order."""
    rng = np.random.default_rng(scenario.seed)
    lines: list[tuple[datetime, dict[str, object]]] = []
    start = scenario.start

    def minute(offset: float) -> datetime:
        return start + timedelta(minutes=offset)

    versions: dict[str, list[tuple[float, str, BadDeploy | None]]] = {
        m.name: [(-1.0, m.version, None)] for m in scenario.models}
    for m in scenario.models:
        lines += _load(scenario, m.name, m.version, minute(0) - timedelta(seconds=30), rng)
    for incident in scenario.incidents:
        if isinstance(incident, BadDeploy):
            old = versions[incident.model][-1][1]
            versions[incident.model].append((incident.at, incident.version, incident))
            lines += _load(scenario, incident.model, incident.version, minute(incident.at), rng)
            if incident.rollback_at is not None:
                versions[incident.model].append((incident.rollback_at, old, None))
                lines += _load(scenario, incident.model, old, minute(incident.rollback_at), rng)

    count = rng.poisson(scenario.per_minute * scenario.minutes)
    arrivals = np.sort(rng.uniform(0.2, scenario.minutes - 0.2, count))
    shares = np.array([m.share for m in scenario.models])
    chosen = rng.choice(len(scenario.models), size=count, p=shares / shares.sum())
    client_weights = np.linspace(2.0, 0.5, len(scenario.clients))
    cumulative = np.cumsum(client_weights / client_weights.sum())
    # Every random number up front, one row per request: numpy draws one at a time cost more
    # than everything else here.
    uniforms = rng.random((count, 16))
    normals = rng.standard_normal((count, 4))
    for index, (at, model_index) in enumerate(zip(arrivals, chosen, strict=True)):
        model = scenario.models[model_index]
        lines += _request(scenario, model, float(at), index, versions[model.name], cumulative,
                          uniforms[index].tolist(), normals[index].tolist())
    lines.sort(key=lambda pair: pair[0])
    return [record for _, record in lines]


def _load(scenario: Scenario, model: str, version: str, at: datetime,
          rng: np.random.Generator) -> list[tuple[datetime, dict[str, object]]]:
    took = float(rng.uniform(2000, 6000))
    ready = at + timedelta(milliseconds=took)
    common = {"service": scenario.server, "model": model, "version": version}
    return [
        (at, {"time": _epoch(at), "event": "model_load_started", **common}),
        (ready, {"time": _epoch(ready), "event": "model_loaded", **common,
                 "load_time_ms": round(took, 1)}),
    ]


def _active(incidents: list[Incident], kind: type, model: str, at: float) -> list:
    found = []
    for incident in incidents:
        if not isinstance(incident, kind) or incident.model != model:
            continue
        until = getattr(incident, "until", None)
        if incident.at <= at and (until is None or at < until):
            found.append(incident)
    return found


def _request(scenario: Scenario, model: Model, at: float, index: int,
             versions: list[tuple[float, str, BadDeploy | None]], client_cumulative: np.ndarray,
             u: list[float], z: list[float]) -> list[tuple[datetime, dict[str, object]]]:
    incidents = scenario.incidents
    t0 = scenario.start + timedelta(minutes=at)
    request_id = f"r{scenario.seed:02d}{index:07d}"
    since, version, deploy = max((v for v in versions if v[0] <= at), key=lambda v: v[0])
    pod = scenario.pods[int(u[0] * len(scenario.pods))]
    client = scenario.clients[min(int(np.searchsorted(client_cumulative, u[1])), len(scenario.clients) - 1)]
    for surge in _active(incidents, ClientSurge, model.name, at):
        client = surge.client if u[2] < surge.share_after else client

    # Large inputs are always slower; a SlowInputs incident makes them more common.
    slowdown = next((s.slowdown for s in incidents
                     if isinstance(s, SlowInputs) and s.model == model.name), 10.0)
    large_share = model.large_share
    for slow in _active(incidents, SlowInputs, model.name, at):
        large_share = slow.share_after
    large = u[3] < large_share
    size = int(math.exp(math.log(model.size_median * (30 if large else 1)) + 0.4 * z[0])) + 1
    latency = math.exp(math.log(model.latency_ms) + 0.35 * z[1])
    if large:
        latency *= slowdown
    if deploy is not None:
        latency *= deploy.slower

    basket = math.exp(math.log(40.0) + 0.8 * z[2])
    confidence_mean = 0.9
    for drift in _active(incidents, Drift, model.name, at):
        basket *= drift.factor
        confidence_mean -= drift.confidence_drop
    confidence = min(0.999, max(0.01, confidence_mean + 0.05 * z[3]))
    score = u[15] ** 2.2

    error: tuple[str, str, int] | None = None
    if u[4] < BASE_INVALID:
        error = ("ValueError", "invalid input: negative basket_value", 422)
    elif u[4] < BASE_INVALID + BASE_INFRA:
        error = ("ConnectionError", "feature store unavailable", 503)
    if deploy is not None and at >= since + deploy.delay_s / 60 and u[5] < deploy.failure_rate:
        error = (deploy.error_type, deploy.message, 500)
    for replica in _active(incidents, BadReplica, model.name, at):
        if pod == replica.pod and u[6] < replica.failure_rate:
            error = ("ConnectionError", f"upstream connect error on {pod}", 503)
    for surge in _active(incidents, ClientSurge, model.name, at):
        if client == surge.client and u[7] < surge.failure_rate:
            error = ("ValueError", "invalid input: unknown country code", 422)
    timeouts = _active(incidents, Timeouts, model.name, at)
    timed_out = bool(timeouts) and u[8] < timeouts[0].rate

    out: list[tuple[datetime, dict[str, object]]] = [(t0, {
        "ts": _iso(t0), "service": scenario.entry, "event": "request_received",
        "req_id": request_id, "model": model.name, "client": client,
    })]
    if timed_out:
        done = t0 + timedelta(milliseconds=timeouts[0].timeout_ms + 1 + 19 * u[13])
        out.append((done, {
            "ts": _iso(done), "service": scenario.entry, "event": "response_sent",
            "req_id": request_id, "model": model.name, "status_code": 504,
            "elapsed_ms": round((done - t0).total_seconds() * 1000, 3),
            "error_type": "TimeoutError", "error_message": f"upstream {scenario.server} timed out",
        }))
        return out
    served = t0 + timedelta(milliseconds=1 + latency)
    line: dict[str, object] = {
        "time": _epoch(served), "event": "inference_failed" if error else "inference_complete",
        "service": scenario.server, "req_id": request_id, "model": model.name,
        "model_version": version, "elapsed_ms": round(latency, 3), "input_tokens": size,
        "pod": pod, "client": client,
        "features": {"basket_value": round(basket, 2), "country": ("DE", "FR", "US", "BR")[int(u[14] * 4)]},
    }
    if error:
        line.update(error_type=error[0], error_message=error[1])
    else:
        line.update(prediction=round(score, 4), confidence=round(confidence, 4))
    out.append((served, line))
    done = served + timedelta(milliseconds=1 + 5 * u[9])
    finish: dict[str, object] = {
        "ts": _iso(done), "service": scenario.entry, "event": "response_sent",
        "req_id": request_id, "model": model.name, "status_code": error[2] if error else 200,
        "elapsed_ms": round((done - t0).total_seconds() * 1000, 3),
    }
    if error:
        finish.update(error_type=error[0], error_message=error[1])
    out.append((done, finish))
    if scenario.labels and not error and u[10] < 0.5:
        accuracy = deploy.accuracy if deploy is not None else model.accuracy
        truth = int(score >= 0.5) if u[11] < accuracy else int(score < 0.5)
        labelled = served + timedelta(minutes=5 + 15 * u[12])
        out.append((labelled, {"ts": _iso(labelled), "service": "feedback", "event": "label",
                               "req_id": request_id, "label": truth}))
    return out


def write(scenario: Scenario, path: str | Path) -> Path:
    """Write the scenario as JSON lines; returns the path."""
    target = Path(path)
    with target.open("w", encoding="utf-8") as out:
        for record in records(scenario):
            out.write(json.dumps(record) + "\n")
    return target
