"""Durations, rates and time bounds as people type them on the command line.

Every command parses its ``--since``/``--until``/``--window``/``--every``/threshold options
here, so the accepted forms and the error messages are the same everywhere. Every error is an
`errors.UsageError` whose one line says what was wrong and shows a form that is accepted.

All datetimes returned are naive and in UTC, like the ``ts`` column of the store.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

from mlinvestigate.errors import UsageError


def _unit_table() -> dict[str, float]:
    """Seconds per unit name. Keys are lower case; units are matched case-insensitively."""
    table: dict[str, float] = {}
    for names, seconds in (
        (("us", "µs", "μs", "usec", "usecs", "microsecond", "microseconds"), 1e-6),
        (("ms", "msec", "msecs", "millisecond", "milliseconds"), 1e-3),
        (("s", "sec", "secs", "second", "seconds"), 1.0),
        (("m", "min", "mins", "minute", "minutes"), 60.0),
        (("h", "hr", "hrs", "hour", "hours"), 3600.0),
        (("d", "day", "days"), 86400.0),
        (("w", "wk", "wks", "week", "weeks"), 604800.0),
    ):
        table.update(dict.fromkeys(names, seconds))
    return table


_UNIT_SECONDS = _unit_table()

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
# Any run of letters is taken as the unit and looked up in _UNIT_SECONDS; cheaper to compile
# than an alternation of every name, and it lets the error name the unknown unit.
_DURATION_PART = re.compile(rf"\s*({_NUMBER})\s*([a-zA-Zµμ]+)")
_BARE_NUMBER = re.compile(rf"\s*({_NUMBER})\s*")
_RATE = re.compile(rf"\s*({_NUMBER})\s*(?:/\s*([a-zA-Zµμ]+))?\s*")
# "2024-05-01…" or basic format "20240501T…", which would otherwise start like "20240501 T".
_LOOKS_LIKE_A_DATE = re.compile(r"\d{4}-|\d{8}T", re.IGNORECASE)
_SPACE_BEFORE_OFFSET = re.compile(r"\s+([+-]\d{2}(?::?\d{2})?|Z)$")
_RELATIVE_BOUND = re.compile(r"\s*-?\s*(.*?)\s*(?:ago)?\s*", re.IGNORECASE)

_DURATION_EXAMPLES = "e.g. 500ms, 30s, 5m, 2h, 1d or 1h30m"
_LATENCY_EXAMPLES = "e.g. 250 (milliseconds), 250ms, 0.5s or 2m"
_RATE_EXAMPLES = "e.g. 200 (per second), 200/s, 12000/m or 1e6/h"
_TIME_EXAMPLES = (
    "use an ISO time (2024-05-01T12:00:00Z, 2024-05-01 12:00+02:00, 2024-05-01), "
    "epoch seconds (1714564800), a duration before the newest event (30m, 2h, 1d) or 'now'"
)

# Epoch values are told apart by magnitude, as at ingest: seconds, then ms, µs and ns.
_EPOCH_SECONDS_MIN = 1e9  # 2001-09-09; a smaller bare number is far more likely a typo.
_EPOCH_DIVISORS = ((1e11, 1.0), (1e14, 1e3), (1e17, 1e6), (math.inf, 1e9))

_MAX_SECONDS = timedelta.max.total_seconds()


def _duration_seconds(
    text: str, *, bare_number_unit: float | None, what: str, examples: str
) -> float:
    """Seconds in `text`; a bare number is read in `bare_number_unit` seconds, or rejected."""
    if not isinstance(text, str) or not text.strip():
        raise UsageError(f"empty {what}; {examples}")
    bare = _BARE_NUMBER.fullmatch(text)
    if bare is not None:
        if bare_number_unit is None:
            raise UsageError(f"{what} {text.strip()!r} has no unit; {examples}")
        return _checked(float(bare.group(1)) * bare_number_unit, text, what, examples)
    total = 0.0
    position = 0
    for part in _DURATION_PART.finditer(text):
        if part.start() != position:
            break
        unit = part.group(2)
        if unit.lower() not in _UNIT_SECONDS:
            raise UsageError(f"unknown unit {unit!r} in {what} {text.strip()!r}; {examples}")
        total += float(part.group(1)) * _UNIT_SECONDS[unit.lower()]
        position = part.end()
    if position == 0 or text[position:].strip():
        if text.strip().startswith("-"):
            raise UsageError(f"{what} {text.strip()!r} is negative; {examples}")
        raise UsageError(f"cannot read {what} {text.strip()!r}; {examples}")
    return _checked(total, text, what, examples)


def _checked(seconds: float, text: str, what: str, examples: str) -> float:
    if not math.isfinite(seconds) or seconds > _MAX_SECONDS:
        raise UsageError(f"{what} {text.strip()!r} is too large; {examples}")
    return seconds


def parse_duration(text: str) -> timedelta:
    """A duration with units: "500ms", "0.5s", "1.2 s", "5m", "2h", "1d", "1w", "250us",
    "1h30m", "4 m 30 s". A bare number is rejected because its unit would be a guess."""
    seconds = _duration_seconds(
        text, bare_number_unit=None, what="duration", examples=_DURATION_EXAMPLES
    )
    return timedelta(seconds=seconds)


def parse_every(text: str) -> timedelta:
    """A bucket or step size: like `parse_duration` but it must be longer than zero."""
    step = parse_duration(text)
    if step <= timedelta(0):
        raise UsageError(
            f"interval {text.strip()!r} must be longer than zero; {_DURATION_EXAMPLES}"
        )
    return step


def parse_latency_ms(text: str) -> float:
    """A latency threshold in milliseconds: "500ms", "0.5s", "2m"; a bare "500" is 500 ms
    because latency_ms is what the logs and the store use."""
    seconds = _duration_seconds(
        text, bare_number_unit=1e-3, what="latency", examples=_LATENCY_EXAMPLES
    )
    return seconds * 1e3


def parse_rate_per_s(text: str) -> float:
    """A rate in events per second: "200/s", "12000/m", "1e6/h"; a bare "200" is per second."""
    if not isinstance(text, str) or not text.strip():
        raise UsageError(f"empty rate; {_RATE_EXAMPLES}")
    match = _RATE.fullmatch(text)
    if match is None:
        if text.strip().startswith("-"):
            raise UsageError(f"rate {text.strip()!r} is negative; {_RATE_EXAMPLES}")
        raise UsageError(f"cannot read rate {text.strip()!r}; {_RATE_EXAMPLES}")
    count = float(match.group(1))
    unit = match.group(2)
    if unit and unit.lower() not in _UNIT_SECONDS:
        raise UsageError(f"unknown unit {unit!r} in rate {text.strip()!r}; {_RATE_EXAMPLES}")
    per = _UNIT_SECONDS[unit.lower()] if unit else 1.0
    rate = count / per
    if not math.isfinite(rate):
        raise UsageError(f"rate {text.strip()!r} is too large; {_RATE_EXAMPLES}")
    return rate


def to_naive_utc(moment: datetime) -> datetime:
    """`moment` in UTC without tzinfo; a naive `moment` is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def _wall_clock_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def parse_time_bound(
    text: str,
    *,
    newest: datetime | None,
    now: datetime | None = None,
    wall_clock: bool = False,
) -> datetime:
    """A point in time, as naive UTC.

    Accepted: "now"; ISO-8601 ("2024-05-01", "2024-05-01T12:00", "2024-05-01 12:00:00.123",
    with "Z", "UTC" or any offset, converted to UTC; without one it is UTC); epoch seconds
    ("1714564800", "1714564800.25"; ms/µs/ns are recognised by magnitude as at ingest);
    and a duration meaning that long before the newest event ("30m", "2h", "1d", "-2h",
    "2h ago"). The duration counts back from `now` instead when `wall_clock` is true or no
    events are loaded (`newest` is None). "now" is always `now` (default: the current time).
    """
    if not isinstance(text, str) or not text.strip():
        raise UsageError(f"empty time; {_TIME_EXAMPLES}")
    stripped = text.strip()
    reference_now = to_naive_utc(now) if now is not None else _wall_clock_now()
    if stripped.lower() == "now":
        return reference_now

    if _BARE_NUMBER.fullmatch(stripped):
        # Eight digits is a basic-format ISO date (20240501), not an epoch time in 1970.
        if len(stripped) == 8 and stripped.isdigit():
            return _parse_iso(stripped)
        return _parse_epoch(stripped)

    if _LOOKS_LIKE_A_DATE.match(stripped):
        return _parse_iso(stripped)
    seconds_back = _relative_seconds(stripped)
    if seconds_back is not None:
        anchor = reference_now if wall_clock or newest is None else to_naive_utc(newest)
        try:
            return anchor - timedelta(seconds=seconds_back)
        except OverflowError:
            raise UsageError(f"time {stripped!r} is too far back; {_TIME_EXAMPLES}") from None
    return _parse_iso(stripped)


def _relative_seconds(text: str) -> float | None:
    """Seconds in a relative bound ("2h", "-2h", "2h ago"), or None when it is not one."""
    relative = _RELATIVE_BOUND.fullmatch(text)
    body = relative.group(1) if relative is not None else text
    if not body or not _DURATION_PART.match(body):
        return None
    # It starts like a duration, so its errors (unknown unit, too large) are the useful ones.
    return _duration_seconds(body, bare_number_unit=None, what="time", examples=_TIME_EXAMPLES)


def _parse_epoch(text: str) -> datetime:
    value = float(text)
    if not math.isfinite(value):
        raise UsageError(f"epoch time {text!r} is out of range; {_TIME_EXAMPLES}")
    if value < _EPOCH_SECONDS_MIN:
        raise UsageError(
            f"time {text!r} is neither an epoch time (1714564800) nor a duration "
            f"(add a unit: {text}m, {text}h); {_TIME_EXAMPLES}"
        )
    divisor = next(divisor for limit, divisor in _EPOCH_DIVISORS if value < limit)
    try:
        return datetime(1970, 1, 1) + timedelta(seconds=value / divisor)
    except OverflowError:
        raise UsageError(f"epoch time {text!r} is out of range; {_TIME_EXAMPLES}") from None


def _parse_iso(text: str) -> datetime:
    normalized = text.strip()
    if normalized[-3:].upper() == "UTC":
        normalized = normalized[:-3].rstrip() + "Z"
    # fromisoformat wants the separators and the zone letter in upper case, and no space
    # before the offset ("2024-05-01 12:00:00 +0200", as `date` prints it).
    normalized = normalized.replace("t", "T").replace("z", "Z")
    normalized = _SPACE_BEFORE_OFFSET.sub(r"\1", normalized)
    try:
        return to_naive_utc(datetime.fromisoformat(normalized))
    except ValueError:
        raise UsageError(f"cannot read time {text!r}; {_TIME_EXAMPLES}") from None
    except OverflowError:  # an offset that moves year 1 or 9999 out of range
        raise UsageError(f"time {text!r} is out of range; {_TIME_EXAMPLES}") from None


def parse_window(
    text: str,
    newest: datetime | None,
    *,
    now: datetime | None = None,
    wall_clock: bool = False,
) -> tuple[datetime | None, datetime | None]:
    """A window written "START..END", as (start, end).

    Either side may be empty (open) and each side is read by `parse_time_bound`, so "2h..1h"
    is from 2 h to 1 h before the newest event. Text without ".." is a start with an open
    end: "2h" means the last two hours."""
    if not isinstance(text, str) or not text.strip():
        raise UsageError("empty window; e.g. 2h.., 2h..1h or 2024-05-01T12:00Z..2024-05-01T13:00Z")
    start_text, separator, end_text = text.partition("..")
    if not separator:
        end_text = ""
    bounds: list[datetime | None] = []
    for side in (start_text, end_text):
        bounds.append(
            parse_time_bound(side, newest=newest, now=now, wall_clock=wall_clock)
            if side.strip()
            else None
        )
    start, end = bounds
    if start is not None and end is not None and start > end:
        raise UsageError(
            f"window {text.strip()!r} starts after it ends ({start.isoformat()}Z > "
            f"{end.isoformat()}Z); e.g. 2h..1h"
        )
    return start, end


def _round_significant(value: float, digits: int) -> float:
    if value == 0:
        return 0.0
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def _short_number(value: float) -> str:
    """Three significant digits without trailing zeros or an exponent: 1.25, 12.3, 850."""
    text = f"{_round_significant(value, 3):.6f}".rstrip("0").rstrip(".")
    return text or "0"


def format_duration(seconds: float) -> str:
    """A short human form: "850 ms", "1.5 s", "4 m 30 s", "2 h 5 m", "3 d 4 h".

    Below a minute three significant digits are kept; above, the two largest units (rounded
    to the smaller). For finite values ≥ 0 the text is accepted by `parse_duration`; NaN and
    infinity give "–"."""
    if not math.isfinite(seconds):
        return "–"
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds == 0:
        return "0 s"
    for unit, scale, limit in (("µs", 1e-6, 1000), ("ms", 1e-3, 1000), ("s", 1.0, 60)):
        rounded = _round_significant(seconds / scale, 3)
        if rounded < limit:
            return f"{_short_number(rounded)} {unit}"
    for major, major_seconds, minor, minor_seconds, limit in (
        ("m", 60, "s", 1, 3600),
        ("h", 3600, "m", 60, 86400),
    ):
        total_minor = round(seconds / minor_seconds)
        if total_minor * minor_seconds < limit:
            return _two_units(total_minor, major_seconds // minor_seconds, major, minor)
    total_hours = round(seconds / 3600)
    return _two_units(total_hours, 24, "d", "h")


def _two_units(total_minor: int, minor_per_major: int, major: str, minor: str) -> str:
    whole, rest = divmod(total_minor, minor_per_major)
    return f"{whole} {major}" if rest == 0 else f"{whole} {major} {rest} {minor}"
