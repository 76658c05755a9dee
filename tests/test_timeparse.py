"""Durations, rates and time bounds as typed on the command line."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlinvestigate.errors import UsageError
from mlinvestigate.timeparse import (
    format_duration,
    parse_duration,
    parse_every,
    parse_latency_ms,
    parse_rate_per_s,
    parse_time_bound,
    parse_window,
    to_naive_utc,
)

NEWEST = datetime(2024, 5, 1, 12, 0, 0)
NOW = datetime(2024, 6, 1, 0, 0, 0)


# ---------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("0.5s", timedelta(milliseconds=500)),
        ("1.2 s", timedelta(seconds=1.2)),
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
        ("250us", timedelta(microseconds=250)),
        ("250µs", timedelta(microseconds=250)),  # micro sign
        ("250μs", timedelta(microseconds=250)),  # Greek mu
        ("1h30m", timedelta(minutes=90)),
        ("4 m 30 s", timedelta(seconds=270)),
        ("  2H ", timedelta(hours=2)),
        ("5 min", timedelta(minutes=5)),
        ("3 hours", timedelta(hours=3)),
        (".5h", timedelta(minutes=30)),
        ("1e3ms", timedelta(seconds=1)),
        ("0s", timedelta(0)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("30", "no unit"),
        ("", "empty"),
        ("   ", "empty"),
        ("-5m", "negative"),
        ("5 months", "unknown unit 'months'"),
        ("5x", "unknown unit 'x'"),
        ("abc", "cannot read"),
        ("5m garbage", "cannot read"),
        ("1e400s", "too large"),
        ("inf s", "cannot read"),
    ],
)
def test_parse_duration_errors_say_what_and_show_an_example(text: str, complaint: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_duration(text)
    message = str(caught.value)
    assert complaint in message
    assert "e.g. 500ms" in message
    assert "\n" not in message


def test_parse_every_must_be_positive() -> None:
    assert parse_every("5m") == timedelta(minutes=5)
    with pytest.raises(UsageError, match="longer than zero"):
        parse_every("0s")


@pytest.mark.parametrize(
    ("text", "expected_ms"),
    [
        ("500", 500.0),  # a bare number is milliseconds
        ("500ms", 500.0),
        ("0.5s", 500.0),
        ("1.2 s", 1200.0),
        ("2m", 120_000.0),
        ("250us", 0.25),
        ("0.1us", 0.0001),  # no microsecond rounding: the result is a float
    ],
)
def test_parse_latency_ms(text: str, expected_ms: float) -> None:
    assert parse_latency_ms(text) == pytest.approx(expected_ms)


@pytest.mark.parametrize("text", ["", "fast", "-5ms", "5 parsecs", "nan"])
def test_parse_latency_ms_errors(text: str) -> None:
    with pytest.raises(UsageError, match="e.g. 250"):
        parse_latency_ms(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("200/s", 200.0),
        ("12000/m", 200.0),
        ("1e6/h", 1e6 / 3600),
        ("200", 200.0),
        ("300 / min", 5.0),
        ("86400/d", 1.0),
    ],
)
def test_parse_rate_per_s(text: str, expected: float) -> None:
    assert parse_rate_per_s(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [("", "empty"), ("-5/s", "negative"), ("5/fortnight", "unknown unit"), ("lots", "cannot")],
)
def test_parse_rate_errors(text: str, complaint: str) -> None:
    with pytest.raises(UsageError, match=complaint):
        parse_rate_per_s(text)


# ---------------------------------------------------------------- format_duration


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0 s"),
        (0.00025, "250 µs"),
        (0.07, "70 ms"),
        (0.85, "850 ms"),
        (0.0009996, "1 ms"),  # rounding carries into the next unit
        (1.5, "1.5 s"),
        (12.345, "12.3 s"),
        (59.96, "1 m"),
        (270, "4 m 30 s"),
        (3599.7, "1 h"),
        (7500, "2 h 5 m"),
        (86399, "1 d"),
        (300_000, "3 d 11 h"),
        (-90, "-1 m 30 s"),
        (math.nan, "–"),
    ],
)
def test_format_duration(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected


def _format_tolerance_s(seconds: float) -> float:
    """How far format_duration may round: 3 significant digits below a minute, then the
    smaller of the two units shown."""
    if seconds < 59.95:
        return seconds * 0.005 + 1e-9
    if seconds < 3600:
        return 0.5
    if seconds < 86400:
        return 30
    return 1800


@given(st.floats(min_value=0, max_value=1e10, allow_nan=False))
def test_format_then_parse_latency_round_trips(milliseconds: float) -> None:
    seconds = milliseconds / 1000
    back_ms = parse_latency_ms(format_duration(seconds))
    assert abs(back_ms / 1000 - seconds) <= _format_tolerance_s(seconds) * 1.000001


@given(st.floats(min_value=0, max_value=1e10, allow_nan=False))
def test_format_then_parse_duration_round_trips(milliseconds: float) -> None:
    seconds = milliseconds / 1000
    back = parse_duration(format_duration(seconds)).total_seconds()
    # timedelta keeps whole microseconds.
    assert abs(back - seconds) <= _format_tolerance_s(seconds) * 1.000001 + 1e-6


@given(
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(["us", "ms", "s", "m", "h", "d", "w"]),
)
def test_integer_amounts_parse_exactly(amount: int, unit: str) -> None:
    expected = {
        "us": timedelta(microseconds=amount),
        "ms": timedelta(milliseconds=amount),
        "s": timedelta(seconds=amount),
        "m": timedelta(minutes=amount),
        "h": timedelta(hours=amount),
        "d": timedelta(days=amount),
        "w": timedelta(weeks=amount),
    }[unit]
    assert parse_duration(f"{amount}{unit}") == expected


# ---------------------------------------------------------------- time bounds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01", datetime(2024, 5, 1)),
        ("20240501", datetime(2024, 5, 1)),
        ("2024-05-01T12:30", datetime(2024, 5, 1, 12, 30)),
        ("2024-05-01 12:30:15", datetime(2024, 5, 1, 12, 30, 15)),
        ("2024-05-01T12:30:15.250", datetime(2024, 5, 1, 12, 30, 15, 250_000)),
        ("2024-05-01T12:30:15.123456789Z", datetime(2024, 5, 1, 12, 30, 15, 123_456)),
        ("2024-05-01T12:30:15Z", datetime(2024, 5, 1, 12, 30, 15)),
        ("2024-05-01t12:30:15z", datetime(2024, 5, 1, 12, 30, 15)),
        ("2024-05-01T12:30:15+02:00", datetime(2024, 5, 1, 10, 30, 15)),
        ("2024-05-01T12:30:15-0530", datetime(2024, 5, 1, 18, 0, 15)),
        ("2024-05-01 00:30+01:00", datetime(2024, 4, 30, 23, 30)),
        ("2024-05-01 12:00 UTC", datetime(2024, 5, 1, 12)),
        ("2024-05-01 12:00:00 +0200", datetime(2024, 5, 1, 10)),
        ("20240501T123015Z", datetime(2024, 5, 1, 12, 30, 15)),
        ("1714564800", datetime(2024, 5, 1, 12)),
        ("1714564800.5", datetime(2024, 5, 1, 12, 0, 0, 500_000)),
        ("1714564800123", datetime(2024, 5, 1, 12, 0, 0, 123_000)),  # epoch ms
        ("30m", NEWEST - timedelta(minutes=30)),
        ("2h", NEWEST - timedelta(hours=2)),
        ("1d", NEWEST - timedelta(days=1)),
        ("90s", NEWEST - timedelta(seconds=90)),
        ("-2h", NEWEST - timedelta(hours=2)),
        ("2h ago", NEWEST - timedelta(hours=2)),
        ("1h30m", NEWEST - timedelta(minutes=90)),
        ("now", NOW),
        ("NOW", NOW),
    ],
)
def test_parse_time_bound(text: str, expected: datetime) -> None:
    parsed = parse_time_bound(text, newest=NEWEST, now=NOW)
    assert parsed == expected
    assert parsed.tzinfo is None


def test_relative_bounds_count_back_from_now_without_events_or_with_wall_clock() -> None:
    assert parse_time_bound("1h", newest=None, now=NOW) == NOW - timedelta(hours=1)
    assert parse_time_bound("1h", newest=NEWEST, now=NOW, wall_clock=True) == NOW - timedelta(
        hours=1
    )


def test_relative_bound_defaults_to_the_real_clock() -> None:
    before = datetime.now(UTC).replace(tzinfo=None)
    parsed = parse_time_bound("1h", newest=None)
    after = datetime.now(UTC).replace(tzinfo=None)
    assert before - timedelta(hours=1) <= parsed <= after - timedelta(hours=1)


def test_aware_newest_and_now_are_converted_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    newest = datetime(2024, 5, 1, 14, 0, tzinfo=plus_two)
    assert parse_time_bound("1h", newest=newest) == datetime(2024, 5, 1, 11, 0)
    assert parse_time_bound("now", newest=None, now=newest) == datetime(2024, 5, 1, 12, 0)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "empty"),
        ("30", "neither an epoch time"),  # a bare small number: the unit was forgotten
        ("yesterday", "cannot read time"),
        ("2024-13-01", "cannot read time"),
        ("12:00", "cannot read time"),
        ("5 fortnights", "unknown unit 'fortnights'"),
        ("1e400", "out of range"),
        ("0001-01-01T00:00+01:00", "out of range"),
        ("999999999w", "too large"),
        ("200000w", "too far back"),  # before year 1
    ],
)
def test_parse_time_bound_errors(text: str, complaint: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_time_bound(text, newest=NEWEST, now=NOW)
    message = str(caught.value)
    assert complaint in message
    assert "ISO time" in message  # every message shows what is accepted
    assert "\n" not in message


_OFFSETS = st.timedeltas(
    min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
).map(lambda offset: timezone(timedelta(minutes=round(offset.total_seconds() / 60))))
_MOMENTS = st.datetimes(min_value=datetime(1990, 1, 2), max_value=datetime(2100, 12, 30))


@given(_MOMENTS, _OFFSETS, st.sampled_from(["T", " "]))
def test_offsets_are_converted_to_utc_like_fromisoformat(
    moment: datetime, offset: timezone, separator: str
) -> None:
    text = moment.replace(tzinfo=offset).isoformat(sep=separator)
    expected = datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None)
    assert parse_time_bound(text, newest=None) == expected


@given(_MOMENTS)
def test_z_and_no_offset_both_mean_utc(moment: datetime) -> None:
    assert parse_time_bound(moment.isoformat(), newest=None) == moment
    assert parse_time_bound(moment.isoformat() + "Z", newest=None) == moment


@given(_MOMENTS.filter(lambda m: m >= datetime(2002, 1, 1)))
def test_epoch_seconds_round_trip(moment: datetime) -> None:
    epoch = moment.replace(tzinfo=UTC).timestamp()
    parsed = parse_time_bound(repr(epoch), newest=None)
    assert abs(parsed - moment) <= timedelta(microseconds=2)


def test_to_naive_utc() -> None:
    assert to_naive_utc(datetime(2024, 1, 1, 5)) == datetime(2024, 1, 1, 5)
    aware = datetime(2024, 1, 1, 5, tzinfo=timezone(timedelta(hours=-3)))
    assert to_naive_utc(aware) == datetime(2024, 1, 1, 8)


# ---------------------------------------------------------------- windows


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h..1h", (NEWEST - timedelta(hours=2), NEWEST - timedelta(hours=1))),
        ("2h..", (NEWEST - timedelta(hours=2), None)),
        ("..1h", (None, NEWEST - timedelta(hours=1))),
        ("..", (None, None)),
        ("2h", (NEWEST - timedelta(hours=2), None)),  # no "..": from then on
        (" 2h .. now ", (NEWEST - timedelta(hours=2), NOW)),
        (
            "2024-05-01T10:00:00.5Z..2024-05-01T12:00+01:00",
            (datetime(2024, 5, 1, 10, 0, 0, 500_000), datetime(2024, 5, 1, 11)),
        ),
        (
            "1714564800..1714568400.5",
            (datetime(2024, 5, 1, 12), datetime(2024, 5, 1, 13, 0, 0, 500_000)),
        ),
    ],
)
def test_parse_window(text: str, expected: tuple[datetime | None, datetime | None]) -> None:
    assert parse_window(text, NEWEST, now=NOW) == expected


def test_parse_window_rejects_a_backwards_window() -> None:
    with pytest.raises(UsageError, match="starts after it ends"):
        parse_window("1h..2h", NEWEST)


@pytest.mark.parametrize("text", ["", "soon..later", "2h..x"])
def test_parse_window_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_window(text, NEWEST)
