"""Deterministic sample prediction logs with known, documented incidents.

The generator simulates a small model-serving deployment: a `gateway` that receives requests and
a `model-server` that runs two models (`fraud`, `recsys`) in several versions. Both services write
JSON lines to one aggregated stream, sorted by time, in the styles the background articles show:
the gateway logs ISO-8601 timestamps (`datetime.utcnow().isoformat() + "Z"`), the model-server
logs epoch floats (`time.time()`) with the event name first, structlog-style. The incidents that
`incidents()` lists happen at fixed clock times relative to `start`, whatever the line count, so
a small sample and a 10 M-line benchmark file tell the same story.

Speed matters (benchmarks generate millions of lines), so random draws are vectorised per chunk
of requests and each line is one f-string mirroring `json.dumps` default output; the tests check
that `json.dumps(json.loads(line)) == line` for every record.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import UsageError

DEFAULT_START = datetime(2026, 1, 13, 0, 0, 0)
DEFAULT_DURATION = timedelta(hours=4)

# ---------------------------------------------------------------------------------------------
# The timeline, as offsets from `start`. README and incidents() are written from these.

FEATURE_DRIFT_AT = timedelta(hours=1, minutes=48, seconds=30)
SLOW_INPUTS_AT = timedelta(hours=2)
BAD_DEPLOY_AT = timedelta(hours=2, minutes=47)
BAD_DEPLOY_READY = BAD_DEPLOY_AT + timedelta(seconds=4, microseconds=213_408)
BAD_DEPLOY_FAILURES_AT = timedelta(hours=2, minutes=48)
ROLLBACK_AT = timedelta(hours=3, minutes=20)
ROLLBACK_READY = ROLLBACK_AT + timedelta(seconds=3, microseconds=904_771)
TIMEOUTS_FROM = timedelta(hours=3, minutes=40)
TIMEOUTS_TO = timedelta(hours=3, minutes=45)
CANARY_OOM_AT = timedelta(minutes=29)
CANARY_AT = timedelta(minutes=30)
CANARY_READY = CANARY_AT + timedelta(seconds=5, microseconds=904_112)

# Traffic starts once the initial model loads are done and stops early enough that every
# request (at most ~2 s at the gateway) finishes inside the window.
TRAFFIC_LEAD = timedelta(seconds=8)
TRAFFIC_TAIL = timedelta(seconds=2, microseconds=100_000)

# ---------------------------------------------------------------------------------------------
# Rates and distributions of the simulated deployment.

RECSYS_SHARE = 0.45
CANARY_SHARE = 0.20
VALIDATION_RATE = 0.01
INFRA_ERROR_RATE = 0.001
BAD_DEPLOY_FAILURE_RATE = 0.13
TIMEOUT_RATE = 0.20
TIMEOUT_MS = 2000
LARGE_INPUT_THRESHOLD = 1000
LARGE_INPUT_SHARE_BEFORE = 0.02
LARGE_INPUT_SHARE_AFTER = 0.25
LARGE_INPUT_SLOWDOWN = 10.0
FRAUD_LATENCY_MEDIAN_MS = 20.0
RECSYS_LATENCY_MEDIAN_MS = 45.0
AMOUNT_MEDIAN, AMOUNT_SIGMA = 45.0, 1.0
DRIFTED_AMOUNT_MEDIAN, DRIFTED_AMOUNT_SIGMA = 135.0, 1.4
PARTNER_SHARE_OF_INVALID = 0.7

# Corrupted lines per physical line written (only with corrupt=True). Together ~0.05 %.
TRUNCATED_RATE = 1.5e-4
WARNING_RATE = 1.5e-4
TRACEBACK_RATE = 0.4e-4  # blocks of 3-5 lines each
BLANK_RATE = 0.5e-4
INVALID_UTF8_RATE = 1e-6  # at least one such line whenever corruption is on
CORRUPTION_MIN_LINES = 1000  # below this the sample is too small to spare lines for noise

CHUNK_REQUESTS = 50_000
_WRITE_LINES = 2048
BIN = timedelta(seconds=10)

# model index -> (model_id, endpoint); version index -> (model index, version)
MODELS = (("fraud", "/v1/fraud/score"), ("recsys", "/v1/recsys/recommend"))
FRAUD, RECSYS = 0, 1
VERSIONS = ((FRAUD, "v1.4.2"), (FRAUD, "v2.1.0"), (RECSYS, "v3.2.1"), (RECSYS, "v3.3.0"))
FRAUD_STABLE, FRAUD_BAD, RECSYS_STABLE, RECSYS_CANARY = range(4)

CLIENTS = (
    "web-checkout", "mobile-ios", "mobile-android", "pos-eu", "batch-rescore", "partner-acme",
)
CLIENT_WEIGHTS = (0.34, 0.22, 0.2, 0.12, 0.09, 0.03)
PARTNER = CLIENTS.index("partner-acme")
MERCHANT_CATEGORIES = ("grocery", "electronics", "travel", "restaurants", "fuel", "online_retail")
MERCHANT_WEIGHTS = (0.3, 0.12, 0.08, 0.22, 0.13, 0.15)
LOCALES = ("en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "ja-JP", "pt-BR")
LOCALE_WEIGHTS = (0.38, 0.14, 0.13, 0.11, 0.09, 0.08, 0.07)
RECSYS_LABELS = ("sports", "news", "finance", "tech", "entertainment", "travel")
RECSYS_LABEL_WEIGHTS = (0.22, 0.25, 0.14, 0.17, 0.15, 0.07)

# Request outcomes.
OK, INVALID, INFRA, INFERENCE, TIMEOUT = range(5)

# (status_code, gateway level, error_type, error_message by model); messages are JSON-safe.
FAILURES: dict[int, tuple[int, str, str, tuple[str, str]]] = {
    INVALID: (422, "warning", "ValueError", (
        "invalid input: field 'amount' must be >= 0",
        "invalid input: field 'history_len' must be >= 0",
    )),
    INFRA: (503, "error", "ConnectionError", (
        "feature store unavailable: Connection reset by peer",
    ) * 2),
    INFERENCE: (500, "error", "RuntimeError", (
        "CUDA error: device-side assert triggered",
    ) * 2),
    TIMEOUT: (504, "error", "TimeoutError", (
        f"upstream model-server exceeded {TIMEOUT_MS}ms timeout",
    ) * 2),
}

# Line kinds, for GenerationStats: event names, then the two kinds of non-records.
EVENT_NAMES = (
    "request_start", "request_success", "request_failure", "prediction_success",
    "prediction_failure", "model_load_start", "model_load_success", "model_load_failure",
)
K = {name: i for i, name in enumerate(EVENT_NAMES)}
CORRUPT = len(EVENT_NAMES)
BLANK = CORRUPT + 1

STDERR_WARNINGS = (
    "WARNING: connection pool is full, discarding connection: model-server",
    "WARNING:urllib3.connectionpool:Connection pool is full, discarding connection: "
    "model-server. Connection pool size: 10",
    "/usr/local/lib/python3.11/site-packages/torch/cuda/__init__.py:128: UserWarning: "
    "CUDA initialization: Unexpected error from cudaGetDeviceCount()",
)
TRACEBACKS = (
    (
        "Traceback (most recent call last):",
        '  File "/app/model_server/serve.py", line 142, in predict',
        "    result = model.predict(features)",
        "RuntimeError: CUDA error: device-side assert triggered",
    ),
    (
        "Traceback (most recent call last):",
        '  File "/usr/local/lib/python3.11/site-packages/urllib3/connectionpool.py", line 791, '
        "in urlopen",
        "ConnectionResetError: [Errno 104] Connection reset by peer",
    ),
    (
        "Traceback (most recent call last):",
        '  File "/app/gateway/handlers.py", line 57, in forward',
        "    resp = await client.post(url, json=payload, timeout=2.0)",
        '  File "/usr/local/lib/python3.11/site-packages/httpx/_client.py", line 1574, in send',
        "httpx.ReadTimeout: timed out",
    ),
)
CUDA_TRACEBACK = 0
# A POS client name written in Latin-1 by a misconfigured caller; "\udcfc" becomes byte 0xfc
# when encoded with surrogateescape, which is never valid UTF-8.
INVALID_UTF8_CLIENT = "pos-m\udcfcnchen"

_US = 1_000_000
_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class Incident:
    """One incident the sample contains, at a fixed clock time, for docs and tests."""

    name: str
    kind: str
    start: datetime
    end: datetime | None
    description: str
    service: str | None = None
    model_id: str | None = None
    model_version: str | None = None
    feature: str | None = None


@dataclass
class GenerationStats:
    """What generate() wrote. lines == sum(events.values()) + corrupted_lines + blank_lines."""

    lines: int = 0  # physical lines, == the `lines` argument
    corrupted_lines: int = 0  # truncated/mis-encoded records, stderr text, traceback lines
    blank_lines: int = 0
    requests: int = 0  # simulated requests (incl. the one still in flight at the end)
    bytes: int = 0  # uncompressed
    events: dict[str, int] = field(default_factory=dict)  # JSON records by event name


def incidents(
    start: datetime = DEFAULT_START, duration: timedelta = DEFAULT_DURATION
) -> list[Incident]:
    """The incidents inside [start, start + duration), ends clipped to the window."""
    start = _naive_utc(start)
    window_end = start + duration

    def at(offset: timedelta) -> datetime:
        return start + offset

    def clock(offset: timedelta) -> str:
        return f"{at(offset):%H:%M:%S}"

    slow_mult = LARGE_INPUT_SLOWDOWN
    all_incidents = [
        Incident(
            "invalid_inputs", "input_validation", start, None,
            f"Throughout, ~{VALIDATION_RATE:.0%} of requests fail validation: model-server "
            "prediction_failure ValueError (\"invalid input: field 'amount' must be >= 0\" for "
            "fraud, 'history_len' for recsys, with the negative value in features) and gateway "
            f"request_failure 422; ~{PARTNER_SHARE_OF_INVALID:.0%} come from client_id "
            "partner-acme.",
            service=None, model_id=None, feature=None,
        ),
        Incident(
            "fraud_amount_drift", "feature_drift", at(FEATURE_DRIFT_AT), None,
            f"From {clock(FEATURE_DRIFT_AT)} fraud features.amount shifts from lognormal median "
            f"~{AMOUNT_MEDIAN:.0f} (sigma {AMOUNT_SIGMA}) to median ~{DRIFTED_AMOUNT_MEDIAN:.0f} "
            f"(sigma {DRIFTED_AMOUNT_SIGMA}) and mean fraud confidence drops from ~0.90 to "
            "~0.70; merchant_category, time_since_last and the recsys features do not change.",
            service="model-server", model_id="fraud", feature="amount",
        ),
        Incident(
            "large_recsys_inputs", "slow_input_class", at(SLOW_INPUTS_AT), None,
            f"Recsys inputs with input_size > {LARGE_INPUT_THRESHOLD} are ~{slow_mult:.0f}x "
            f"slower (median ~{RECSYS_LATENCY_MEDIAN_MS * slow_mult:.0f} ms vs "
            f"~{RECSYS_LATENCY_MEDIAN_MS:.0f} ms) throughout; from {clock(SLOW_INPUTS_AT)} their "
            f"share of recsys traffic jumps from ~{LARGE_INPUT_SHARE_BEFORE:.0%} to "
            f"~{LARGE_INPUT_SHARE_AFTER:.0%}, so recsys p90 latency rises from ~75 ms to ~480 ms "
            "and p99 from ~400 ms to ~900 ms.",
            service="model-server", model_id="recsys", feature="input_size",
        ),
        Incident(
            "bad_deploy", "model_load_failures", at(BAD_DEPLOY_AT), at(ROLLBACK_READY),
            f"fraud v2.1.0 is loaded at {clock(BAD_DEPLOY_AT)} (model_load_success "
            f"{clock(BAD_DEPLOY_READY)}); from {clock(BAD_DEPLOY_FAILURES_AT)} "
            f"~{BAD_DEPLOY_FAILURE_RATE:.0%} of fraud predictions fail with RuntimeError "
            "'CUDA error: device-side assert triggered' (gateway 500) until v1.4.2 is loaded "
            f"back at {clock(ROLLBACK_AT)} (ready {clock(ROLLBACK_READY)}).",
            service="model-server", model_id="fraud", model_version="v2.1.0",
        ),
        Incident(
            "recsys_timeouts", "timeouts", at(TIMEOUTS_FROM), at(TIMEOUTS_TO),
            f"From {clock(TIMEOUTS_FROM)} to {clock(TIMEOUTS_TO)} ~{TIMEOUT_RATE:.0%} of recsys "
            f"requests time out at the gateway (request_failure, status_code 504, TimeoutError, "
            f"latency_ms ~{TIMEOUT_MS}) and the model-server logs no finish line for them.",
            service="gateway", model_id="recsys",
        ),
        Incident(
            "corrupted_lines", "corrupted_lines", start, None,
            "Throughout (only with corrupt=True), ~0.05% of physical lines are not clean "
            "records: truncated JSON, plain-text stderr warnings, 3-5-line Python tracebacks, "
            "blank lines and at least one record with invalid UTF-8 bytes.",
        ),
    ]
    kept = []
    for inc in all_incidents:
        if inc.start >= window_end:
            continue
        end = inc.end if inc.end is None or inc.end <= window_end else window_end
        kept.append(Incident(inc.name, inc.kind, inc.start, end, inc.description, inc.service,
                             inc.model_id, inc.model_version, inc.feature))
    return kept


# ---------------------------------------------------------------------------------------------
# Time helpers. All times are int64 microseconds since the Unix epoch: exact and sortable.


def _naive_utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo is not None else dt


def _us(dt: datetime) -> int:
    return (_naive_utc(dt) - _EPOCH) // timedelta(microseconds=1)


def _td_us(td: timedelta) -> int:
    return td // timedelta(microseconds=1)


# Rendering numbers. Python's float repr costs ~0.8 µs a number (more than the rest of a line),
# so numbers are kept as scaled integers and rendered by gathering pre-built strings from
# object arrays. The strings are exactly what repr() of the float gives: the decimal with
# trailing zeros dropped and at least one fractional digit (fine for < 16 significant digits
# and nothing below 1e-4, which holds for every field here).


def _table(strings: list[str]) -> np.ndarray:
    table = np.empty(len(strings), dtype=object)
    table[:] = strings
    return table


_SMALL_INTS = 10_000
_INTS = _table([str(i) for i in range(_SMALL_INTS)])
_FRACTIONS = {p: _table([f"{i:0{p}d}".rstrip("0") or "0" for i in range(10**p)]) for p in (1, 2, 3)}
_DEC4 = _table([repr(i / 10_000) for i in range(10_001)])
# Sub-second parts of a µs time, in two halves of three digits to keep the tables small.
# ISO: index 1000 is a whole second, whose fraction isoformat() leaves out.
_ISO_MS = _table([f".{i:03d}" for i in range(1000)] + [""])
_ISO_US = _table([f"{i:03d}" for i in range(1000)] + [""])
# Epoch floats: entries 1000+ are for when the last three digits are zero (and dropped).
_EPOCH_MS = _table([f"{i:03d}" for i in range(1000)]
                   + [f"{i:03d}".rstrip("0") or "0" for i in range(1000)])
_EPOCH_US = _table([f"{i:03d}".rstrip("0") for i in range(1000)])


def _ints(values: np.ndarray) -> list[str]:
    """str() of non-negative integers."""
    out = _INTS[np.minimum(values, _SMALL_INTS - 1)]
    big = np.flatnonzero(values >= _SMALL_INTS)
    out[big] = [str(v) for v in values[big].tolist()]
    return out.tolist()


def _fixed(scaled: np.ndarray, places: int) -> tuple[list[str], list[str]]:
    """Whole and fractional text of non-negative scaled / 10**places: f"{whole}.{fraction}"."""
    whole, frac = np.divmod(scaled, 10**places)
    return _ints(whole), _FRACTIONS[places][frac].tolist()


def _seconds_table(sec: np.ndarray, render: Callable[[np.ndarray], list[str]]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Text of every second a batch of times spans (a few minutes per chunk), and indexes."""
    lo = int(sec.min()) if len(sec) else 0
    hi = int(sec.max()) + 1 if len(sec) else 0
    return _table(render(np.arange(lo, hi))), sec - lo


def _iso(us: np.ndarray) -> tuple[list[str], list[str], list[str]]:
    """isoformat() of µs times in three parts (no Z); a zero fraction is left out."""
    sec, frac = np.divmod(us, _US)
    table, index = _seconds_table(
        sec, lambda s: np.datetime_as_string(s.astype("datetime64[s]"), unit="s").tolist())
    ms, micro = np.divmod(frac, 1000)
    whole = frac == 0
    return (table[index].tolist(), _ISO_MS[np.where(whole, 1000, ms)].tolist(),
            _ISO_US[np.where(whole, 1000, micro)].tolist())


def _epoch(us: np.ndarray) -> tuple[list[str], list[str], list[str]]:
    """repr(us / 1e6) in three parts: f"{seconds}.{ms}{us}" (what time.time() would log)."""
    sec, frac = np.divmod(us, _US)
    table, index = _seconds_table(sec, lambda s: [str(x) for x in s.tolist()])
    ms, micro = np.divmod(frac, 1000)
    return (table[index].tolist(), _EPOCH_MS[ms + 1000 * (micro == 0)].tolist(),
            _EPOCH_US[micro].tolist())


def _scramble(index: np.ndarray, key: int) -> np.ndarray:
    """A bijection on 40-bit integers: unique request indexes give unique random-looking ids."""
    mask = np.uint64((1 << 40) - 1)
    x = (index.astype(np.uint64) + np.uint64(key)) & mask
    x = (x * np.uint64(0x9E3779B97F4A7C15 & ((1 << 40) - 1) | 1)) & mask
    x ^= x >> np.uint64(19)
    x = (x * np.uint64(0xBF58476D1CE4E5B9 & ((1 << 40) - 1) | 1)) & mask
    x ^= x >> np.uint64(21)
    return x


# The hex ids of a request live in one string, sliced where a line needs them:
# request id, trace id, gateway span, model-server span, input hash, output hash.
_RID, _TRACE, _GW_SPAN, _MS_SPAN, _IN_HASH, _OUT_HASH = (
    slice(0, 10), slice(10, 42), slice(42, 58), slice(58, 74), slice(74, 90), slice(90, 106))
_ID_BYTES = 53


def _hex_ids(rng: np.random.Generator, index: np.ndarray, key: int) -> np.ndarray:
    n = len(index)
    raw = np.empty((n, _ID_BYTES), dtype=np.uint8)
    # The 40-bit request id, big-endian: the last 5 of its 8 bytes.
    raw[:, :5] = _scramble(index, key).astype(">u8").view(np.uint8).reshape(n, 8)[:, 3:]
    raw[:, 5:] = np.frombuffer(rng.bytes(n * (_ID_BYTES - 5)), dtype=np.uint8).reshape(n, -1)
    text = raw.tobytes().hex()
    width = 2 * _ID_BYTES
    return _table([text[i:i + width] for i in range(0, n * width, width)])


# ---------------------------------------------------------------------------------------------
# The traffic plan: how many requests arrive in each 10-second bin.


@dataclass
class _Window:
    start: int  # µs, like every time below
    end: int
    traffic_start: int
    traffic_end: int

    def at(self, offset: timedelta) -> int:
        return self.start + _td_us(offset)


def _bin_weights(rng: np.random.Generator, window: _Window, edges: np.ndarray) -> np.ndarray:
    """Relative traffic per bin: a mild diurnal curve times slowly wandering noise."""
    mids = (edges[:-1] + edges[1:]) / 2
    hour = (mids / _US / 3600.0) % 24
    diurnal = 1 + 0.2 * np.sin(2 * np.pi * (hour - 10) / 24)
    steps = rng.normal(0.0, 0.04, size=len(mids))
    wander = np.zeros(len(mids))
    level = 0.0
    for i, step in enumerate(steps.tolist()):  # AR(1): a minute of busy traffic, not one bin
        level = 0.9 * level + step
        wander[i] = level
    return diurnal * np.exp(wander) * (np.diff(edges) / _td_us(BIN))


def _timeout_fraction(window: _Window, edges: np.ndarray, weights: np.ndarray) -> float:
    """Expected share of requests that time out (2 lines instead of 3), to size the plan."""
    lo = np.clip(edges[:-1], window.at(TIMEOUTS_FROM), window.at(TIMEOUTS_TO))
    hi = np.clip(edges[1:], window.at(TIMEOUTS_FROM), window.at(TIMEOUTS_TO))
    overlap = (hi - lo) / np.diff(edges)
    share = float((weights * overlap).sum() / weights.sum())
    return share * RECSYS_SHARE * TIMEOUT_RATE * (1 - VALIDATION_RATE)


def _chunks(counts: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive bin ranges of about CHUNK_REQUESTS requests each (memory stays bounded)."""
    chunks, lo, total = [], 0, 0
    for i, c in enumerate(counts.tolist()):
        total += c
        if total >= CHUNK_REQUESTS:
            chunks.append((lo, i + 1))
            lo, total = i + 1, 0
    if lo < len(counts) or not chunks:
        if chunks and total < CHUNK_REQUESTS // 2:
            # The last chunk absorbs the plan's error, so it must not be tiny: merge it.
            chunks[-1] = (chunks[-1][0], len(counts))
        else:
            chunks.append((lo, len(counts)))
    return chunks


# ---------------------------------------------------------------------------------------------
# Requests: every per-request quantity, drawn vectorised for a chunk.


@dataclass
class _Requests:
    arrival: np.ndarray  # gateway request_start
    version: np.ndarray  # index into VERSIONS
    model: np.ndarray
    outcome: np.ndarray
    cache_hit: np.ndarray
    model_us: np.ndarray  # model-server latency
    ms_end: np.ndarray  # model-server finish line
    gw_end: np.ndarray  # gateway finish line
    input_size: np.ndarray
    client: np.ndarray
    amount: np.ndarray  # cents
    merchant: np.ndarray
    since_last: np.ndarray  # tenths of a second
    history_len: np.ndarray
    locale: np.ndarray
    score: np.ndarray  # 1e-4 units, like confidence
    label: np.ndarray
    confidence: np.ndarray
    ids: np.ndarray  # hex id strings, see _RID, _TRACE, ...

    def __len__(self) -> int:
        return len(self.arrival)

    def lines_per_request(self) -> np.ndarray:
        return np.where(self.outcome == TIMEOUT, 2, 3)

    def take(self, n: int) -> _Requests:
        return _Requests(**{k: v[:n] for k, v in vars(self).items()})


def _lognormal(rng: np.random.Generator, median: float | np.ndarray, sigma: float | np.ndarray,
               n: int) -> np.ndarray:
    return np.asarray(median) * np.exp(rng.normal(0.0, 1.0, n) * sigma)


def _draw_requests(rng: np.random.Generator, window: _Window, arrival: np.ndarray,
                   first_index: int, id_key: int) -> _Requests:
    n = len(arrival)
    rel_drift = arrival >= window.at(FEATURE_DRIFT_AT)
    model = (rng.random(n) < RECSYS_SHARE).astype(np.int8)
    fraud, recsys = model == FRAUD, model == RECSYS

    bad_deployed = (arrival >= window.at(BAD_DEPLOY_READY)) & (arrival < window.at(ROLLBACK_READY))
    canary = (arrival >= window.at(CANARY_READY)) & (rng.random(n) < CANARY_SHARE)
    version = np.where(
        fraud,
        np.where(bad_deployed, FRAUD_BAD, FRAUD_STABLE),
        np.where(canary, RECSYS_CANARY, RECSYS_STABLE),
    ).astype(np.int8)

    outcome = _draw_outcomes(rng, window, arrival, version, recsys)
    ok = outcome == OK
    cache_hit = ok & (rng.random(n) < np.where(fraud, 0.02, 0.12))

    client = rng.choice(len(CLIENTS), size=n, p=CLIENT_WEIGHTS)
    # A misbehaving partner integration sends most of the invalid inputs.
    client = np.where((outcome == INVALID) & (rng.random(n) < PARTNER_SHARE_OF_INVALID),
                      PARTNER, client)

    amount = _lognormal(rng, np.where(rel_drift, DRIFTED_AMOUNT_MEDIAN, AMOUNT_MEDIAN),
                        np.where(rel_drift, DRIFTED_AMOUNT_SIGMA, AMOUNT_SIGMA), n)
    amount = np.where(outcome == INVALID, -_lognormal(rng, 20.0, 1.0, n), amount)
    amount = np.clip(np.rint(amount * 100), -10**8, 10**8).astype(np.int64)
    amount[amount == 0] = 1
    merchant = rng.choice(len(MERCHANT_CATEGORIES), size=n, p=MERCHANT_WEIGHTS)
    since_last = np.rint(rng.exponential(36_000.0, n)).astype(np.int64)
    history_len = rng.geometric(1 / 40, n)
    history_len = np.where(outcome == INVALID, -rng.integers(1, 50, n), history_len)
    locale = rng.choice(len(LOCALES), size=n, p=LOCALE_WEIGHTS)

    slow_share = np.where(arrival >= window.at(SLOW_INPUTS_AT), LARGE_INPUT_SHARE_AFTER,
                          LARGE_INPUT_SHARE_BEFORE)
    large = recsys & (rng.random(n) < slow_share)
    recsys_size = np.where(
        large,
        np.clip(_lognormal(rng, 2200.0, 0.45, n), LARGE_INPUT_THRESHOLD + 1, 12_000),
        np.clip(_lognormal(rng, 180.0, 0.6, n), 8, LARGE_INPUT_THRESHOLD),
    )
    input_size = np.where(recsys, recsys_size, rng.integers(180, 260, n)).astype(np.int64)

    model_us = _model_latency_us(rng, version, outcome, cache_hit, large)
    net_us = rng.integers(150, 900, n)
    back_us = np.rint(np.clip(_lognormal(rng, 2500.0, 0.35, n), 300, 40_000)).astype(np.int64)
    ms_end = arrival + net_us + model_us
    timeout_us = TIMEOUT_MS * 1000 + rng.integers(150, 2500, n)
    gw_end = np.where(outcome == TIMEOUT, arrival + timeout_us, ms_end + back_us)

    score = np.where(rel_drift, rng.beta(1.2, 8.0, n), rng.beta(0.6, 12.0, n))
    label = rng.choice(len(RECSYS_LABELS), size=n, p=RECSYS_LABEL_WEIGHTS)
    confidence = np.where(
        fraud,
        np.where(rel_drift, rng.beta(7.0, 3.0, n), rng.beta(18.0, 2.0, n)),
        rng.beta(6.0, 2.5, n),
    )

    index = np.arange(first_index, first_index + n, dtype=np.int64)
    return _Requests(
        arrival=arrival, version=version, model=model, outcome=outcome, cache_hit=cache_hit,
        model_us=model_us, ms_end=ms_end, gw_end=gw_end, input_size=input_size, client=client,
        amount=amount, merchant=merchant, since_last=since_last, history_len=history_len,
        locale=locale, score=np.rint(score * 10_000).astype(np.int64), label=label,
        confidence=np.rint(confidence * 10_000).astype(np.int64),
        ids=_hex_ids(rng, index, id_key),
    )


def _draw_outcomes(rng: np.random.Generator, window: _Window, arrival: np.ndarray,
                   version: np.ndarray, recsys: np.ndarray) -> np.ndarray:
    n = len(arrival)
    u = rng.random(n)
    outcome = np.full(n, OK, dtype=np.int8)
    outcome[u < VALIDATION_RATE + INFRA_ERROR_RATE] = INFRA
    outcome[u < VALIDATION_RATE] = INVALID
    # v2.1.0 serves from its load at 02:47:04 but only starts failing a minute later.
    failing = (version == FRAUD_BAD) & (arrival >= window.at(BAD_DEPLOY_FAILURES_AT))
    outcome[(outcome == OK) & failing & (rng.random(n) < BAD_DEPLOY_FAILURE_RATE)] = INFERENCE
    in_burst = (arrival >= window.at(TIMEOUTS_FROM)) & (arrival < window.at(TIMEOUTS_TO))
    # A request rejected by validation answers fast, so it cannot time out.
    timed_out = recsys & in_burst & (outcome != INVALID) & (rng.random(n) < TIMEOUT_RATE)
    outcome[timed_out] = TIMEOUT
    return outcome


def _model_latency_us(rng: np.random.Generator, version: np.ndarray, outcome: np.ndarray,
                      cache_hit: np.ndarray, large: np.ndarray) -> np.ndarray:
    n = len(version)
    recsys = version >= RECSYS_STABLE
    median = np.where(recsys, RECSYS_LATENCY_MEDIAN_MS, FRAUD_LATENCY_MEDIAN_MS)
    median = median * np.where(large, LARGE_INPUT_SLOWDOWN, 1.0)
    median = median * np.where(version == RECSYS_CANARY, 1.05, 1.0)
    median = median * np.where(version == FRAUD_BAD, 1.1, 1.0)
    sigma = np.where(recsys, 0.4, 0.35)
    # Fast paths: cache hits, validation rejects before inference, errors that abort early.
    median = np.where(cache_hit, 0.8, median)
    median = np.where(outcome == INVALID, 0.4, median)
    median = np.where(outcome == INFRA, 5.0, median)
    median = np.where(outcome == INFERENCE, 8.0, median)
    sigma = np.where(cache_hit | (outcome == INVALID), 0.3, sigma)
    ms = np.clip(_lognormal(rng, median, sigma, n), 0.05, TIMEOUT_MS - 50)
    return np.rint(ms * 1000).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Formatting: each template reproduces json.dumps(record) for its record shape.


@dataclass
class _Lines:
    text: list[str]
    ts: np.ndarray
    kind: np.ndarray

    @staticmethod
    def concat(parts: list[_Lines]) -> _Lines:
        text: list[str] = []
        for p in parts:
            text.extend(p.text)
        return _Lines(
            text,
            np.concatenate([p.ts for p in parts]) if parts else np.zeros(0, np.int64),
            np.concatenate([p.kind for p in parts]) if parts else np.zeros(0, np.int8),
        )

    def sorted(self) -> _Lines:
        order = np.argsort(self.ts, kind="stable")
        text = self.text
        return _Lines([text[i] for i in order.tolist()], self.ts[order], self.kind[order])

    def between(self, lo: int, hi: int) -> _Lines:
        keep = (self.ts >= lo) & (self.ts < hi)
        text = [t for t, k in zip(self.text, keep.tolist(), strict=True) if k]
        return _Lines(text, self.ts[keep], self.kind[keep])

    def split(self, at: int) -> tuple[_Lines, _Lines]:
        """Sorted lines before time `at`, and the rest (carried into the next chunk)."""
        i = int(np.searchsorted(self.ts, at, side="left"))
        return (_Lines(self.text[:i], self.ts[:i], self.kind[:i]),
                _Lines(self.text[i:], self.ts[i:], self.kind[i:]))


_ENDPOINT_MODEL = _table([
    f'"endpoint": "{endpoint}", "model_id": "{model_id}"' for model_id, endpoint in MODELS
])
_MODEL_VERSION = _table([
    f'"model_id": "{MODELS[m][0]}", "model_version": "{v}"' for m, v in VERSIONS
])
_CLIENTS = _table(list(CLIENTS))
_MERCHANTS = _table(list(MERCHANT_CATEGORIES))
_LOCALES = _table(list(LOCALES))
_LABELS = _table(list(RECSYS_LABELS))
_BOOLS = _table(["false", "true"])


def _error_fragment(outcome: int, model: int) -> str:
    _, _, error_type, messages = FAILURES[outcome]
    return (f'"error_type": {json.dumps(error_type)}, '
            f'"error_message": {json.dumps(messages[model])}')


_ERRORS = {(o, m): _error_fragment(o, m) for o in FAILURES for m in (FRAUD, RECSYS)}


def _format_requests(r: _Requests) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gateway start lines, model-server finish lines, gateway finish lines (object arrays
    indexed by request, None where a request has no such line)."""
    n = len(r)
    em = _ENDPOINT_MODEL[r.model]
    start = np.empty(n, dtype=object)
    start[:] = [
        f'{{"timestamp": "{t}{ms}{us}Z", "service": "gateway", "event": "request_start", '
        f'"level": "info", "request_id": "req-{h[_RID]}", {e}, "client_id": "{c}", '
        f'"trace_id": "{h[_TRACE]}", "span_id": "{h[_GW_SPAN]}"}}'
        for t, ms, us, h, e, c in zip(*_iso(r.arrival), r.ids.tolist(), em.tolist(),
                                      _CLIENTS[r.client].tolist(), strict=True)
    ]

    gw_end = np.empty(n, dtype=object)
    ok = np.flatnonzero(r.outcome == OK)
    gw_end[ok] = [
        f'{{"timestamp": "{t}{ms}{us}Z", "service": "gateway", "event": "request_success", '
        f'"level": "info", "request_id": "req-{h[_RID]}", {e}, "status_code": 200, '
        f'"latency_ms": {lat}.{lat_frac}}}'
        for t, ms, us, h, e, lat, lat_frac in zip(
            *_iso(r.gw_end[ok]), r.ids[ok].tolist(), em[ok].tolist(),
            *_fixed(r.gw_end[ok] - r.arrival[ok], 3), strict=True)
    ]
    failed = np.flatnonzero(r.outcome != OK)
    gw_end[failed] = [
        f'{{"timestamp": "{t}{ms}{us}Z", "service": "gateway", "event": "request_failure", '
        f'"level": "{FAILURES[o][1]}", "request_id": "req-{h[_RID]}", {e}, '
        f'"status_code": {FAILURES[o][0]}, "latency_ms": {lat}.{lat_frac}, {_ERRORS[o, m]}}}'
        for t, ms, us, h, e, lat, lat_frac, o, m in zip(
            *_iso(r.gw_end[failed]), r.ids[failed].tolist(), em[failed].tolist(),
            *_fixed(r.gw_end[failed] - r.arrival[failed], 3), r.outcome[failed].tolist(),
            r.model[failed].tolist(), strict=True)
    ]
    return start, _format_model_server(r), gw_end


def _format_model_server(r: _Requests) -> np.ndarray:
    lines = np.empty(len(r), dtype=object)
    mv = _MODEL_VERSION[r.version]

    def common(rows: np.ndarray) -> list[list[str]]:
        """Fields every model-server line of `rows` has, in zip order."""
        return [r.ids[rows].tolist(), mv[rows].tolist(), _ints(r.input_size[rows]),
                *_fixed(r.model_us[rows], 3), *_epoch(r.ms_end[rows])]

    rows = np.flatnonzero((r.outcome == OK) & (r.model == FRAUD))
    lines[rows] = [
        f'{{"event": "prediction_success", "request_id": "req-{h[_RID]}", {v}, '
        f'"input_hash": "{h[_IN_HASH]}", "input_size": {size}, "output_hash": "{h[_OUT_HASH]}", '
        f'"latency_ms": {lat}.{lat_frac}, "prediction": {score}, "confidence": {conf}, '
        f'"cache_hit": {hit}, "features": {{"amount": {a}.{a_frac}, "merchant_category": '
        f'"{mc}", "time_since_last": {since}.{since_frac}}}, "timestamp": {sec}.{ms}{us}, '
        f'"trace_id": "{h[_TRACE]}", "span_id": "{h[_MS_SPAN]}", '
        f'"parent_span_id": "{h[_GW_SPAN]}", "level": "info", "service": "model-server"}}'
        for h, v, size, lat, lat_frac, sec, ms, us, score, conf, hit, a, a_frac, mc, since,
        since_frac in zip(
            *common(rows), _DEC4[r.score[rows]].tolist(), _DEC4[r.confidence[rows]].tolist(),
            _BOOLS[r.cache_hit[rows].astype(np.int8)].tolist(), *_fixed(r.amount[rows], 2),
            _MERCHANTS[r.merchant[rows]].tolist(), *_fixed(r.since_last[rows], 1), strict=True)
    ]
    rows = np.flatnonzero((r.outcome == OK) & (r.model == RECSYS))
    lines[rows] = [
        f'{{"event": "prediction_success", "request_id": "req-{h[_RID]}", {v}, '
        f'"input_hash": "{h[_IN_HASH]}", "input_size": {size}, "output_hash": "{h[_OUT_HASH]}", '
        f'"latency_ms": {lat}.{lat_frac}, "prediction": "{label}", "confidence": {conf}, '
        f'"cache_hit": {hit}, "features": {{"history_len": {hist}, "locale": "{loc}"}}, '
        f'"timestamp": {sec}.{ms}{us}, "trace_id": "{h[_TRACE]}", "span_id": "{h[_MS_SPAN]}", '
        f'"parent_span_id": "{h[_GW_SPAN]}", "level": "info", "service": "model-server"}}'
        for h, v, size, lat, lat_frac, sec, ms, us, label, conf, hit, hist, loc in zip(
            *common(rows), _LABELS[r.label[rows]].tolist(), _DEC4[r.confidence[rows]].tolist(),
            _BOOLS[r.cache_hit[rows].astype(np.int8)].tolist(), _ints(r.history_len[rows]),
            _LOCALES[r.locale[rows]].tolist(), strict=True)
    ]
    # Failures are ~1 % of lines: plain per-row code, features may hold negative values.
    rows = np.flatnonzero((r.outcome != OK) & (r.outcome != TIMEOUT))
    lines[rows] = [
        f'{{"event": "prediction_failure", "request_id": "req-{h[_RID]}", {v}, '
        f'"input_hash": "{h[_IN_HASH]}", "input_size": {size}, {_ERRORS[o, m]}, '
        f'"latency_ms": {lat}.{lat_frac}, "features": {_features(r, j)}, '
        f'"timestamp": {sec}.{ms}{us}, "trace_id": "{h[_TRACE]}", "span_id": "{h[_MS_SPAN]}", '
        f'"parent_span_id": "{h[_GW_SPAN]}", "level": "error", "service": "model-server"}}'
        for h, v, size, lat, lat_frac, sec, ms, us, o, m, j in zip(
            *common(rows), r.outcome[rows].tolist(), r.model[rows].tolist(), rows.tolist(),
            strict=True)
    ]
    return lines


def _features(r: _Requests, j: int) -> str:
    if r.model[j] == FRAUD:
        return json.dumps({"amount": int(r.amount[j]) / 100,
                           "merchant_category": MERCHANT_CATEGORIES[r.merchant[j]],
                           "time_since_last": int(r.since_last[j]) / 10})
    return json.dumps({"history_len": int(r.history_len[j]), "locale": LOCALES[r.locale[j]]})


def _request_lines(r: _Requests, truncate_at: list[tuple[int, float]],
                   invalid_utf8: list[int]) -> _Lines:
    """All lines of a batch of requests, with the planned corruptions applied in place."""
    start, ms, gw = _format_requests(r)
    start_kind = np.full(len(r), K["request_start"], dtype=np.int8)
    ms_kind = np.where(r.outcome == OK, K["prediction_success"],
                       K["prediction_failure"]).astype(np.int8)
    gw_kind = np.where(r.outcome == OK, K["request_success"], K["request_failure"]).astype(np.int8)
    for j, fraction in truncate_at:
        # A record cut mid-write (a pod killed while flushing): the request loses its hop.
        ms[j] = ms[j][: max(1, int(len(ms[j]) * fraction))]
        ms_kind[j] = CORRUPT
    for j in invalid_utf8:
        start[j] = start[j].replace(f'"client_id": "{CLIENTS[r.client[j]]}"',
                                    f'"client_id": "{INVALID_UTF8_CLIENT}"')
        start_kind[j] = CORRUPT
    has_ms = r.outcome != TIMEOUT
    return _Lines(
        start.tolist() + ms[has_ms].tolist() + gw.tolist(),
        np.concatenate([r.arrival, r.ms_end[has_ms], r.gw_end]),
        np.concatenate([start_kind, ms_kind[has_ms], gw_kind]),
    )


# ---------------------------------------------------------------------------------------------
# Lines that are not request traffic: model lifecycle events and inserted noise.


def _lifecycle_lines(window: _Window) -> _Lines:
    """Model loads as seed 003 logs them (`version`, not `model_version`)."""
    ms = timedelta(milliseconds=1)
    oom = ("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.78 GiB total capacity; "
           "13.62 GiB already allocated; 1.21 GiB free; 13.9 GiB reserved in total by PyTorch)")
    plan: list[tuple[timedelta, timedelta | None, str, str, dict[str, object]]] = [
        (timedelta(0), timedelta(seconds=3, microseconds=812_470), "fraud", "v1.4.2",
         {"memory_mb": 1843.2}),
        (4.113 * ms, timedelta(seconds=6, microseconds=187_905), "recsys", "v3.2.1",
         {"memory_mb": 4210.8}),
        (CANARY_OOM_AT + 1.204 * ms, None, "recsys", "v3.3.0", {"error": oom}),
        (CANARY_AT + 0.871 * ms, CANARY_READY, "recsys", "v3.3.0", {"memory_mb": 4388.5}),
        (BAD_DEPLOY_AT + 2.841 * ms, BAD_DEPLOY_READY, "fraud", "v2.1.0", {"memory_mb": 2290.4}),
        (ROLLBACK_AT + 1.377 * ms, ROLLBACK_READY, "fraud", "v1.4.2", {"memory_mb": 1843.2}),
    ]
    records: list[tuple[int, int, dict[str, object]]] = []
    for begin, ready, model_id, version, extra in plan:
        t0 = window.at(begin)
        records.append((t0, K["model_load_start"],
                        {"event": "model_load_start", "model_id": model_id, "version": version}))
        if "error" in extra:
            t1 = window.at(CANARY_OOM_AT + timedelta(seconds=7, microseconds=318_052))
            body = {"event": "model_load_failure", "model_id": model_id, "version": version,
                    "error": extra["error"]}
            records.append((t1, K["model_load_failure"], body))
        else:
            assert ready is not None
            t1 = window.at(ready)
            body = {"event": "model_load_success", "model_id": model_id, "version": version,
                    "memory_mb": extra["memory_mb"], "load_time_ms": (t1 - t0) / 1000}
            records.append((t1, K["model_load_success"], body))
    kept = [(t, k, b) for t, k, b in records if t < window.end]
    text = [
        json.dumps({**body, "timestamp": t / _US,
                    "level": "error" if k == K["model_load_failure"] else "info",
                    "service": "model-server"})
        for t, k, body in kept
    ]
    return _Lines(text, np.array([t for t, _, _ in kept], dtype=np.int64),
                  np.array([k for _, k, _ in kept], dtype=np.int8))


@dataclass
class _CorruptionPlan:
    inserted: _Lines  # warnings, tracebacks, blank lines: extra physical lines
    truncate_times: np.ndarray  # a request near each time gets its model-server line cut
    truncate_fractions: np.ndarray
    invalid_utf8_times: np.ndarray  # a request near each time gets a Latin-1 client_id

    def targets(self, lo: int, hi: int, batch: _Requests
                ) -> tuple[list[tuple[int, float]], list[int]]:
        """The requests of a chunk [lo, hi) to corrupt: (index, cut fraction) pairs for
        truncation, and indexes for the invalid UTF-8 client_id."""
        planned = (self.truncate_times >= lo) & (self.truncate_times < hi)
        cut = _targets(self.truncate_times, lo, hi, batch.arrival, batch.outcome != TIMEOUT)
        fractions = self.truncate_fractions[planned].tolist()
        latin1 = _targets(self.invalid_utf8_times, lo, hi, batch.arrival,
                          np.ones(len(batch), dtype=bool))
        return list(zip(cut, fractions, strict=False)), latin1


def _plan_corruption(rng: np.random.Generator, window: _Window, lines: int,
                     corrupt: bool) -> _CorruptionPlan:
    def count(rate: float) -> int:
        if not corrupt or lines < CORRUPTION_MIN_LINES:
            return 0
        return max(1, round(lines * rate))

    def times(k: int) -> np.ndarray:
        return np.sort(rng.integers(window.traffic_start, window.traffic_end, k))

    text: list[str] = []
    ts: list[int] = []
    kind: list[int] = []
    for t, w in zip(times(count(WARNING_RATE)).tolist(),
                    rng.integers(0, len(STDERR_WARNINGS), count(WARNING_RATE)).tolist(),
                    strict=True):
        text.append(STDERR_WARNINGS[w])
        ts.append(t)
        kind.append(CORRUPT)
    n_tb = count(TRACEBACK_RATE)
    for t, which in zip(times(n_tb).tolist(), rng.integers(1, len(TRACEBACKS), n_tb).tolist(),
                        strict=True):
        # During the bad deploy the tracebacks are the CUDA assert, as they would be.
        bad = window.at(BAD_DEPLOY_FAILURES_AT) <= t < window.at(ROLLBACK_READY)
        block = TRACEBACKS[CUDA_TRACEBACK if bad else which]
        text.extend(block)
        ts.extend([t] * len(block))
        kind.extend([CORRUPT] * len(block))
    for t in times(count(BLANK_RATE)).tolist():
        text.append("")
        ts.append(t)
        kind.append(BLANK)
    n_trunc = count(TRUNCATED_RATE)
    return _CorruptionPlan(
        inserted=_Lines(text, np.array(ts, dtype=np.int64), np.array(kind, dtype=np.int8)),
        truncate_times=times(n_trunc),
        truncate_fractions=rng.uniform(0.25, 0.85, n_trunc),
        invalid_utf8_times=times(count(INVALID_UTF8_RATE)),
    )


def _targets(times: np.ndarray, lo: int, hi: int, arrival: np.ndarray,
             eligible: np.ndarray) -> list[int]:
    """Index of the first eligible request at or after each planned time in [lo, hi)."""
    idx = np.flatnonzero(eligible)
    if len(idx) == 0:
        return []
    chosen = times[(times >= lo) & (times < hi)]
    pos = np.minimum(np.searchsorted(arrival[idx], chosen), len(idx) - 1)
    return idx[pos].tolist()


# ---------------------------------------------------------------------------------------------
# Output.


class _Sink:
    """Writes bytes to a path (.gz, .zst or plain) or to an open binary stream."""

    def __init__(self, out: BinaryIO | str | Path) -> None:
        self._close: list[object] = []
        if isinstance(out, str | Path):
            path = Path(out)
            if path.suffix == ".zst":
                import zstandard  # only needed for .zst; fail before creating the file
            raw = open(path, "wb")  # closed in close()
            self._close.append(raw)
            if path.suffix == ".gz":
                # mtime=0 and no file name in the header: same input, same bytes.
                gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0)
                self._close.insert(0, gz)
                self._stream: BinaryIO = gz  # type: ignore[assignment]
            elif path.suffix == ".zst":
                zw = zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=False)
                self._close.insert(0, zw)
                self._stream = zw  # type: ignore[assignment]
            else:
                self._stream = raw
        else:
            self._stream = out

    def write(self, data: bytes) -> None:
        self._stream.write(data)

    def close(self) -> None:
        for f in self._close:
            f.close()  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# The generator.


def generate(
    out: BinaryIO | str | Path,
    lines: int,
    seed: int = 7,
    start: datetime = DEFAULT_START,
    duration: timedelta = DEFAULT_DURATION,
    corrupt: bool = True,
) -> GenerationStats:
    """Write exactly `lines` physical lines of sample logs spread over [start, start+duration).

    Byte-identical output for the same arguments (and numpy version). A path ending in .gz is
    gzip-compressed, .zst zstd-compressed; an open binary stream gets plain bytes and stays open.
    """
    if lines < 0:
        raise UsageError(f"--lines must be >= 0, got {lines}")
    if duration < timedelta(minutes=1):
        raise UsageError(f"the sample window must be at least a minute, got {duration}")
    start_us = _us(start)
    end_us = start_us + _td_us(duration)
    window = _Window(start_us, end_us, start_us + _td_us(TRAFFIC_LEAD),
                     end_us - _td_us(TRAFFIC_TAIL))
    seeds = np.random.SeedSequence(seed).spawn(2)
    rng, corruption_rng = np.random.default_rng(seeds[0]), np.random.default_rng(seeds[1])
    id_key = int(rng.integers(0, 1 << 40))

    lifecycle = _lifecycle_lines(window)
    corruption = _plan_corruption(corruption_rng, window, lines, corrupt)
    fixed = _Lines.concat([lifecycle, corruption.inserted])
    budget = max(0, lines - len(fixed.text))  # lines left for request traffic

    edges = np.append(np.arange(window.traffic_start, window.traffic_end, _td_us(BIN)),
                      window.traffic_end).astype(np.int64)
    weights = _bin_weights(rng, window, edges)
    planned = math.floor(budget / (3 - _timeout_fraction(window, edges, weights)))
    cumulative = np.rint(np.cumsum(weights) / weights.sum() * planned).astype(np.int64)
    counts = np.diff(cumulative, prepend=0)
    chunks = _chunks(counts)

    sink = _Sink(out)
    stats = GenerationStats()
    kinds = np.zeros(BLANK + 1, dtype=np.int64)
    carry = _Lines([], np.zeros(0, np.int64), np.zeros(0, np.int8))
    request_lines = 0
    first_index = 0
    try:
        for c, (lo_bin, hi_bin) in enumerate(chunks):
            last = c == len(chunks) - 1
            lo = window.start if c == 0 else int(edges[lo_bin])
            hi = window.end if last else int(edges[hi_bin])
            if last:
                batch, filler = _fit_final_chunk(rng, window, edges, counts, lo_bin, hi_bin,
                                                 budget - request_lines, first_index, id_key)
            else:
                arrival = _arrivals(rng, edges, counts, lo_bin, hi_bin)
                batch = _draw_requests(rng, window, arrival, first_index, id_key)
                filler = None
            first_index += len(batch) + (filler is not None)
            request_lines += int(batch.lines_per_request().sum())
            parts = [carry, fixed.between(lo, hi),
                     _request_lines(batch, *corruption.targets(lo, hi, batch))]
            if filler is not None:
                parts.append(filler)
            # Lines from this chunk's requests may finish after `hi`: they wait for the next.
            ready, carry = _Lines.concat(parts).sorted().split(hi)
            _write(sink, ready, lines, stats, kinds)
        _write(sink, carry, lines, stats, kinds)
        stats.requests = first_index
    finally:
        sink.close()
    stats.events = {name: int(kinds[i]) for i, name in enumerate(EVENT_NAMES)}
    stats.corrupted_lines = int(kinds[CORRUPT])
    stats.blank_lines = int(kinds[BLANK])
    return stats


def _arrivals(rng: np.random.Generator, edges: np.ndarray, counts: np.ndarray, lo_bin: int,
              hi_bin: int, extra: int = 0) -> np.ndarray:
    """Uniform arrival times inside each bin (a Poisson process given the bin counts)."""
    c = counts[lo_bin:hi_bin]
    lo = np.repeat(edges[lo_bin:hi_bin], c)
    width = np.repeat(np.diff(edges)[lo_bin:hi_bin], c)
    arrival = lo + (rng.random(len(lo)) * width).astype(np.int64)
    if extra:
        arrival = np.concatenate(
            [arrival, rng.integers(edges[lo_bin], edges[hi_bin], extra, dtype=np.int64)])
    arrival = np.sort(arrival)
    # ~0.3 % of gateway clocks read a whole second, so the sample has isoformat() lines
    # without a fraction ("...T02:47:01Z"), which parsers must accept too.
    whole = rng.random(len(arrival)) < 0.003
    whole &= arrival - arrival % _US >= edges[lo_bin]  # stay inside the chunk
    arrival[whole] -= arrival[whole] % _US
    return np.sort(arrival)


def _fit_final_chunk(rng: np.random.Generator, window: _Window, edges: np.ndarray,
                     counts: np.ndarray, lo_bin: int, hi_bin: int, remaining: int,
                     first_index: int, id_key: int) -> tuple[_Requests, _Lines | None]:
    """Draw the last chunk with spare requests, keep as many as fill the line budget exactly,
    and make up the last 1-2 lines with a request still in flight when the log ends."""
    spare = 16
    while True:
        arrival = _arrivals(rng, edges, counts, lo_bin, hi_bin, extra=spare)
        batch = _draw_requests(rng, window, arrival, first_index, id_key)
        used = np.cumsum(batch.lines_per_request())
        keep = int(np.searchsorted(used, remaining, side="right"))
        if keep < len(batch) or remaining <= 0:
            break
        spare *= 4  # more timeouts than planned (rare): draw again with more spare requests
    batch = batch.take(keep)
    rest = remaining - (int(used[keep - 1]) if keep else 0)
    if rest <= 0:
        return batch, None
    return batch, _in_flight(rng, window, rest, first_index + keep, id_key)


def _in_flight(rng: np.random.Generator, window: _Window, lines: int, index: int,
               id_key: int) -> _Lines:
    """A request whose remaining lines would be written after the window ends: 1 or 2 lines."""
    arrival = window.end - (10_000 if lines == 2 else 500)
    r = _draw_requests(rng, window, np.array([arrival], dtype=np.int64), index, id_key)
    r.outcome[:] = OK
    r.cache_hit[:] = False
    r.model_us[:] = 5_000
    r.ms_end[:] = arrival + 300 + 5_000
    r.gw_end[:] = r.ms_end + 6_000
    all_lines = _request_lines(r, [], [])
    kept = all_lines.ts < window.end
    assert int(kept.sum()) == lines
    return _Lines([t for t, k in zip(all_lines.text, kept.tolist(), strict=True) if k],
                  all_lines.ts[kept], all_lines.kind[kept])


def _write(sink: _Sink, chunk: _Lines, limit: int, stats: GenerationStats,
           kinds: np.ndarray) -> None:
    # The plan fills the budget exactly; the cap only bites for tiny `lines` where the fixed
    # lifecycle lines alone exceed it.
    take = max(0, min(len(chunk.text), limit - stats.lines))
    if take == 0:
        return
    text = chunk.text
    for i in range(0, take, _WRITE_LINES):
        # Joined and encoded in pieces that stay in the CPU cache: one 100 MB string per
        # chunk was a third of the run time.
        piece = text[i:min(i + _WRITE_LINES, take)]
        piece.append("")  # the final newline
        data = "\n".join(piece).encode("utf-8", "surrogateescape")
        sink.write(data)
        stats.bytes += len(data)
    stats.lines += take
    kinds += np.bincount(chunk.kind[:take], minlength=len(kinds))
