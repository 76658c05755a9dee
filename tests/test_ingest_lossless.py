"""Lossless ingest with accounting: every physical line is an event, a blank line or a reject,
whatever the bytes (truncated JSON, torn last line, invalid UTF-8, NUL, BOM, CRLF, 10 MB lines)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_helpers import Ingested, epoch_us, ingest, ingest_text, write_log

from mlinvestigate.ingest import reader
from mlinvestigate.schema import REJECT_RAW_LIMIT

EDGE_LINES: list[tuple[bytes, str]] = [
    # (physical line without its newline, what it must become)
    (b'\xef\xbb\xbf{"event": "bom", "timestamp": 1768272420}\r', "event"),
    (b'{"event": "crlf"}\r', "event"),
    (b"", "blank"),
    (b"   \t", "blank"),
    (b"\r", "blank"),
    (b'{"event": "trunc", "latency', "invalid_json"),
    (b'{"event": "crlf-trunc"\r', "invalid_json"),
    (b'{"event": "bad", "x": "\xff\xfe"}', "invalid_utf8"),
    (b"\xc3\x28 latin-1 caf\xe9", "invalid_utf8"),
    (b"\x00\x00\x00", "not_json"),
    (b'{"event": "nul\\u0000inside"}', "event"),
    (b"plain\x00text", "not_json"),
    (b"[1, 2]", "not_object"),
    (b'"just a string"', "not_object"),
    (b"42", "not_object"),
    (b"null", "not_object"),
    (b'{"event": "units", "latency_ms": "47ms"}', "event"),
    (b'{"a": 1} trailing words', "invalid_json"),
    ('{"event": "unicode ✓ 😀", "request_id": "r-é"}'.encode(), "event"),
    (b'{"event": "torn', "invalid_json"),  # the last line, without a newline
]


def _edge_file(tmp_path: Path) -> Path:
    data = b"\n".join(line for line, _ in EDGE_LINES)  # no newline after the last line
    return write_log(tmp_path, "edge.log", data)


def _line_at(data: bytes, offset: int) -> bytes:
    end = data.find(b"\n", offset)
    return data[offset:] if end < 0 else data[offset:end]


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Ingested]:
    """The edge-case file, ingested once for the tests below."""
    path = _edge_file(tmp_path_factory.mktemp("edge"))
    return path, ingest([path])


def test_edge_cases_are_all_accounted_for(edge: tuple[Path, Ingested]) -> None:
    """Each awkward line ends up where it should, nothing is fatal, and the totals add up."""
    path, got = edge
    kinds: dict[int, str] = {}
    for event in got.events:
        kinds[event["line"]] = "event"
    for reject in got.rejects:
        assert reject["line"] not in kinds
        kinds[reject["line"]] = reject["kind"]
    blank = [n for n, (_, kind) in enumerate(EDGE_LINES, 1) if kind == "blank"]
    assert [kinds.get(n, "blank") for n in range(1, len(EDGE_LINES) + 1)] == [k for _, k in EDGE_LINES]
    assert not set(blank) & set(kinds)
    report = got.report
    assert (report.lines, report.blank_lines, report.rejects) == (
        len(EDGE_LINES), len(blank), len(got.rejects))
    assert len({e["line"] for e in got.events}) + report.rejects + report.blank_lines == report.lines
    [source] = got.sources
    assert (source["lines_read"], source["events"], source["rejects"], source["blank_lines"]) == (
        len(EDGE_LINES), len(got.events), len(got.rejects), len(blank))
    assert source["bytes_read"] == path.stat().st_size
    # attrs is the record without BOM and line ending; the escaped NUL is kept.
    by_event = {e["event"]: e for e in got.events}
    assert by_event["bom"]["attrs"] == '{"event": "bom", "timestamp": 1768272420}'
    assert by_event["crlf"]["attrs"] == '{"event": "crlf"}'
    assert by_event["nul\x00inside"]["attrs"] == '{"event": "nul\\u0000inside"}'
    assert by_event["unicode ✓ 😀"]["request_id"] == "r-é"


def test_reject_byte_offsets_point_at_the_line_in_the_file(edge: tuple[Path, Ingested]) -> None:
    """A reject's byte offset leads to its line in the file; raw and raw_bytes describe that line."""
    path, got = edge
    data = path.read_bytes()
    assert got.rejects
    for reject in got.rejects:
        line = _line_at(data, reject["byte_offset"]).removesuffix(b"\r")
        expected_line, _ = EDGE_LINES[reject["line"] - 1]
        assert line == expected_line.removesuffix(b"\r")
        assert reject["raw"] == line.decode("utf-8", "backslashreplace")
        assert reject["raw_bytes"] == len(line)
        assert reject["source"] == str(path)
        assert reject["reason"]


def test_ten_megabyte_lines(tmp_path: Path) -> None:
    """10 MB lines spanning many reads: a record kept whole, garbage clipped to 64 KiB of bytes."""
    big_record = json.dumps({"event": "big", "blob": "x" * 10_000_000})
    lines = [big_record, "g" * 10_000_000, "é" * 5_000_000, '{"event": "after"}']
    got = ingest_text(tmp_path, lines, chunk_bytes=1 << 20)  # each long line spans ten reads
    big, after = got.events
    assert big["attrs"] == big_record and after["event"] == "after"
    ascii_reject, utf8_reject = got.rejects
    assert (ascii_reject["line"], ascii_reject["raw_bytes"]) == (2, 10_000_000)
    assert ascii_reject["raw"] == "g" * REJECT_RAW_LIMIT
    assert (utf8_reject["line"], utf8_reject["raw_bytes"]) == (3, 10_000_000)
    assert len(utf8_reject["raw"].encode()) <= REJECT_RAW_LIMIT
    assert utf8_reject["raw"] == "é" * (REJECT_RAW_LIMIT // 2)
    assert utf8_reject["byte_offset"] == len(big_record) + 1 + 10_000_001


def test_sample_logs_lines_add_up(tmp_path: Path) -> None:
    """On the generated logs (with their corrupted lines) events + rejects + blank = lines."""
    from mlinvestigate.sample import generate

    path = tmp_path / "sample.jsonl"
    stats = generate(str(path), lines=5000, seed=5)
    got = ingest([path])
    [source] = got.sources
    assert source["lines_read"] == stats.lines == 5000
    assert len({e["line"] for e in got.events}) + len(got.rejects) + source["blank_lines"] == 5000
    assert source["blank_lines"] == stats.blank_lines
    assert len(got.rejects) == stats.corrupted_lines


# --- random inputs ---------------------------------------------------------------------------

EPOCH = datetime(1970, 1, 1)
FIRST_US = epoch_us(datetime(2001, 1, 1))
LAST_US = epoch_us(datetime(2037, 12, 31))
TS_FORMATS = ("iso_z", "iso_offset", "iso_naive", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns",
              "epoch_ms_str", "epoch_ns_str", "none")
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**15), 10**15)
    | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=6,
)
LATENCY = st.integers(-(10**6), 10**12) | st.floats(-1e9, 1e12, allow_nan=False, allow_subnormal=False)
BLANKS = (b"", b" ", b"\t", b"  \t ")


@st.composite
def timestamps(draw: st.DrawFn) -> tuple[Any, datetime | None]:
    """A timestamp as some logger writes it, and the UTC time it means."""
    us = draw(st.integers(FIRST_US, LAST_US))
    moment = EPOCH + timedelta(microseconds=us)
    fmt = draw(st.sampled_from(TS_FORMATS))
    if fmt == "none":
        return None, None
    if fmt == "iso_z":
        return moment.isoformat() + "Z", moment
    if fmt == "iso_naive":
        return moment.isoformat(), moment
    if fmt == "iso_offset":
        zone = timezone(timedelta(minutes=15 * draw(st.integers(-14 * 4, 14 * 4))))
        return moment.replace(tzinfo=UTC).astimezone(zone).isoformat(), moment
    if fmt == "epoch_s":
        return us / 1e6, moment
    if fmt in ("epoch_ms", "epoch_ms_str"):
        ms = us // 1000
        return (str(ms) if fmt.endswith("_str") else ms), EPOCH + timedelta(milliseconds=ms)
    if fmt == "epoch_us":
        return us, moment
    ns = us * 1000 + draw(st.integers(0, 999))
    return (str(ns) if fmt.endswith("_str") else ns), moment


@st.composite
def records(draw: st.DrawFn) -> tuple[bytes, dict[str, Any], datetime | None]:
    """(line bytes, the record, its time) for a valid record with random values and key order."""
    fields: dict[str, Any] = {
        "event": draw(TEXT), "request_id": draw(TEXT), "model_version": draw(TEXT),
        "level": draw(st.sampled_from(["info", "warning", "error", "debug"])), "latency_ms": draw(LATENCY),
    }
    value, moment = draw(timestamps())
    if value is not None:
        fields["timestamp"] = value
    fields.update(draw(st.dictionaries(TEXT.map(lambda k: "extra_" + k), JSON_VALUES, max_size=3)))
    record = {key: fields[key] for key in draw(st.permutations(list(fields)))}
    text = json.dumps(record, ensure_ascii=draw(st.booleans()),
                      separators=draw(st.sampled_from([(", ", ": "), (",", ":")])))
    text = " " * draw(st.integers(0, 2)) + text + " " * draw(st.integers(0, 2))
    return text.encode("utf-8"), record, moment


def _not_blank(data: bytes) -> bool:
    return bool(data.strip(b" \t\r\x0b\x0c"))


GARBAGE = (
    st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b and _not_blank(b))
    | TEXT.map(lambda t: t.encode()).filter(lambda b: b"\n" not in b and _not_blank(b))
    | records().flatmap(lambda r: st.integers(1, len(r[0].strip()) - 1).map(lambda k: r[0].strip()[:k]))
)
LINES = st.lists(
    st.one_of(records().map(lambda r: ("record", *r)),
              GARBAGE.map(lambda g: ("garbage", g, None, None)),
              st.sampled_from(BLANKS).map(lambda b: ("blank", b, None, None))),
    min_size=1, max_size=12,
)


def _check_accounting(got: Ingested, total: int, blank: int) -> None:
    event_lines = {e["line"] for e in got.events}
    reject_lines = [r["line"] for r in got.rejects]
    assert len(reject_lines) == len(set(reject_lines))
    assert not event_lines & set(reject_lines)
    assert got.report.lines == total
    assert got.report.blank_lines == blank
    assert len(event_lines) + len(reject_lines) + blank == total
    assert event_lines | set(reject_lines) <= set(range(1, total + 1))
    [source] = got.sources
    assert (source["lines_read"], source["events"], source["rejects"], source["blank_lines"]) == (
        total, len(got.events), len(got.rejects), blank)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=LINES,
    endings=st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=12, max_size=12),
    bom=st.booleans(),
    final_newline=st.booleans(),
    chunk_bytes=st.one_of(st.just(1 << 20), st.integers(40, 700)),
)
def test_random_inputs_lose_nothing(
    tmp_path_factory: Any, lines: list[tuple[str, bytes, Any, Any]], endings: list[bytes], bom: bool,
    final_newline: bool, chunk_bytes: int,
) -> None:
    """Random records, garbage, blanks, CRLF, BOM and chunk sizes: lines add up, records arrive unchanged."""
    data = b"\xef\xbb\xbf" if bom else b""
    for index, (_, content, _, _) in enumerate(lines):
        last = index == len(lines) - 1
        if not last or final_newline or not content:
            content += endings[index]
        data += content
    path = write_log(tmp_path_factory.mktemp("random"), "random.log", data)
    got = ingest([path], chunk_bytes=chunk_bytes)

    blank = sum(1 for kind, *_ in lines if kind == "blank")
    _check_accounting(got, len(lines), blank)

    events = got.by_line()
    previous: datetime | None = None
    for number, (kind, content, record, moment) in enumerate(lines, 1):
        if kind == "blank":
            assert (number, 0) not in events
        if kind != "record":
            continue
        event = events[(number, 0)]
        assert event["attrs"] == content.decode("utf-8")
        assert json.loads(event["attrs"]) == record
        assert (event["event"], event["request_id"], event["model_version"], event["level"]) == (
            record["event"], record["request_id"], record["model_version"], record["level"])
        assert event["latency_ms"] == float(record["latency_ms"])
        if moment is not None:
            assert (event["ts"], event["ts_inferred"]) == (moment, False)
            previous = moment
        else:
            assert (event["ts"], event["ts_inferred"]) == (previous, previous is not None)


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 4, 5, 1 << 20])
def test_bom_split_across_reads(chunk_bytes: int) -> None:
    """A BOM is skipped whatever the read size, also when a read ends right after it."""
    stream = io.BytesIO(b'\xef\xbb\xbf{"a": 1}\nxyz\n')
    batches = list(reader.iter_line_batches(stream, chunk_bytes=chunk_bytes))
    texts = [t for b in batches for t in b.table.column("text").to_pylist()]
    offsets = [o for b in batches for o in b.table.column("byte_offset").to_pylist()]
    assert (texts, offsets) == (['{"a": 1}\n', "xyz\n"], [3, 12])


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(max_size=300) | st.lists(st.sampled_from(
        [b"\n", b"\r\n", b"{}", b"\xef\xbb\xbf", b"\xff", b"\xc3\xa9", b"\xc3", b"abc", b"\x00"]),
        max_size=40).map(b"".join),
    chunk_bytes=st.integers(1, 64),
    final=st.booleans(),
)
def test_reader_splits_any_bytes_into_numbered_lines(data: bytes, chunk_bytes: int, final: bool) -> None:
    """The line reader at any chunk size: the file's lines, numbers and offsets; bad UTF-8 set aside."""
    batches = list(reader.iter_line_batches(io.BytesIO(data), chunk_bytes=chunk_bytes, final=final))
    body_start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    body = data[body_start:]
    expected = body.split(b"\n")
    if expected[-1] == b"" or not final:
        expected = expected[:-1]  # no line after the last newline (or a torn line left unread)
    got_lines: list[tuple[int, int, bytes]] = []
    for batch in batches:
        table = batch.table.to_pydict()
        invalid = {bad.line: bad for bad in batch.invalid_utf8}
        for line, offset, text, valid in zip(table["line"], table["byte_offset"], table["text"],
                                             table["valid_utf8"], strict=True):
            if valid:
                got_lines.append((line, offset, text.encode().removesuffix(b"\n")))
            else:
                bad = invalid[line]
                assert bad.byte_offset == offset
                raw = data[offset:].split(b"\n", 1)[0]
                assert bad.raw == raw.rstrip(b"\r\n").decode("utf-8", "backslashreplace")
                got_lines.append((line, offset, raw))
    assert [n for n, _, _ in got_lines] == list(range(1, len(expected) + 1))
    assert [text for _, _, text in got_lines] == expected
    offsets, position = [], body_start
    for line in expected:
        offsets.append(position)
        position += len(line) + 1
    assert [offset for _, offset, _ in got_lines] == offsets
    if batches:
        assert batches[-1].end_offset == (len(data) if final else position)
