"""The Parquet event store: layout and types, idempotent and append-only export, ingest
--parquet with its rejects, DuckDB over the store (--store) giving the database's answers, and
--engine spark without pyspark failing with one line. No Spark here (tests/test_spark_engine.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from investigation_fixtures import request_records, write_jsonl

from mlinvestigate import store
from mlinvestigate.cli.common import CommonOptions, open_engine
from mlinvestigate.errors import UsageError
from mlinvestigate.ingest.pipeline import ingest_paths
from mlinvestigate.investigations.errors import errors
from mlinvestigate.investigations.filters import Filters
from mlinvestigate.investigations.latency import latency
from mlinvestigate.investigations.loads import loads
from mlinvestigate.investigations.slow import slow
from mlinvestigate.investigations.summary import summary
from mlinvestigate.investigations.throughput import throughput
from mlinvestigate.investigations.trace import trace
from mlinvestigate.parquet_store import escape_partition_value, export_parquet, open_store
from mlinvestigate.sample import DEFAULT_START, generate

DAY_ONE = DEFAULT_START
DAY_TWO = DEFAULT_START + timedelta(days=1)


def _day_log(path: Path, start: object, prefix: str) -> Path:
    records = []
    for i in range(6):
        records += request_records(f"{prefix}-{i}", start + timedelta(minutes=i),  # type: ignore[operator]
                                   model_ms=10.0 + i, gateway_ms=20.0 + i,
                                   model="fraud" if i % 2 else "a/b=c")
    path = write_jsonl(path, records)
    with path.open("a", encoding="utf-8") as out:
        out.write("this line is not JSON\n")
    return path


@pytest.fixture()
def two_days(tmp_path: Path) -> tuple[Path, Path, Path]:
    return (_day_log(tmp_path / "day1.jsonl", DAY_ONE, "req-a"),
            _day_log(tmp_path / "day2.jsonl", DAY_TWO, "req-b"), tmp_path / "store")


def _files(root: Path) -> dict[str, int]:
    """Every Parquet file under the store with its modification time (ns)."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*.parquet")}


def test_layout_types_and_compression(two_days: tuple[Path, Path, Path]) -> None:
    day1, _, root = two_days
    con = store.connect(store.MEMORY)
    ingest_paths(con, [str(day1)])
    report = export_parquet(con, root)
    assert report.events == 18 and report.rejects == 1 and report.files_written == 2
    names = sorted(_files(root))
    assert [n.rsplit("/", 1)[0] for n in names] == [
        "_rejects", "_sources", "dt=2026-01-13/model_id=a%2Fb%3Dc", "dt=2026-01-13/model_id=fraud"]
    parquet = pq.ParquetFile(root / names[-1])
    ts = parquet.schema.column(parquet.schema.names.index("ts"))
    assert "isAdjustedToUTC=false" in str(ts.logical_type)
    assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"
    assert "model_id" not in parquet.schema.names  # it lives in the path
    table = parquet.read()
    assert json.loads(table.column("attrs")[0].as_py())["request_id"].startswith("req-a")
    assert table.column("ts").to_pylist() == sorted(table.column("ts").to_pylist())
    rejects = pq.read_table(root / names[0])
    assert rejects.column("raw").to_pylist() == ["this line is not JSON"]


def test_export_is_idempotent_and_a_new_day_leaves_old_files_alone(
        two_days: tuple[Path, Path, Path]) -> None:
    day1, day2, root = two_days
    db = str(root.parent / "events.duckdb")
    con = store.connect(db)
    ingest_paths(con, [str(day1)])
    export_parquet(con, root)
    first = _files(root)
    again = export_parquet(con, root)
    assert again.files_written == 0 and _files(root) == first

    ingest_paths(con, [str(day2)])
    export_parquet(con, root)
    after = _files(root)
    assert {k: v for k, v in after.items() if k in first} == first  # not rewritten
    assert any(k.startswith("dt=2026-01-14/") for k in after)
    engine = open_store(str(root))
    try:
        assert engine.execute("SELECT count(*) FROM events").fetchone()[0] == \
            con.execute("SELECT count(*) FROM events").fetchone()[0] == 36
    finally:
        engine.close()
        con.close()


def test_ingest_parquet_writes_the_same_store_as_export(two_days: tuple[Path, Path, Path],
                                                        tmp_path: Path) -> None:
    day1, day2, root = two_days
    mlinv = [sys.executable, "-c", "from mlinvestigate.cli import main; main()"]
    done = subprocess.run([*mlinv, "ingest", str(day1), str(day2), "--parquet", str(root), "-q"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    written = _files(root)
    assert len([n for n in written if n.startswith("_rejects/")]) == 2
    # The same sources exported from a database map onto the same files: nothing doubles.
    con = store.connect(str(tmp_path / "db.duckdb"))
    ingest_paths(con, [str(day1), str(day2)])
    report = export_parquet(con, root)
    con.close()
    assert report.files_written == 0

    def events_files(files: dict[str, int]) -> dict[str, int]:  # _sources holds ingest times
        return {k: v for k, v in files.items() if k.startswith("dt=")}

    assert events_files(_files(root)) == events_files(written)


def test_escaped_and_null_partition_values() -> None:
    assert escape_partition_value("a/b=c %") == "a%2Fb%3Dc %25"
    assert escape_partition_value(None) == escape_partition_value("") == \
        "__HIVE_DEFAULT_PARTITION__"


@pytest.fixture(scope="module")
def sample_and_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("store")
    log = folder / "sample.jsonl"
    generate(log, 8000, seed=3, duration=timedelta(hours=30))
    db = folder / "sample.duckdb"
    con = store.connect(str(db))
    ingest_paths(con, [str(log)])
    export_parquet(con, folder / "store")
    con.close()
    return db, folder / "store"


def test_duckdb_over_the_store_gives_the_database_answers(sample_and_store: tuple[Path, Path]
                                                          ) -> None:
    db, root = sample_and_store
    con = store.connect(str(db), read_only=True)
    engine = open_store(str(root))
    night = Filters(since=DEFAULT_START + timedelta(hours=20),
                    until=DEFAULT_START + timedelta(hours=27))
    try:
        for filters in (Filters(), night):
            for investigation in (summary, slow, latency, loads, errors):
                assert investigation(con, filters).rows == investigation(engine, filters).rows
            flows = [throughput(c, filters, every=timedelta(hours=1)).rows for c in (con, engine)]
            assert [r[:5] for r in flows[0]] == [r[:5] for r in flows[1]]
        request = con.execute("SELECT request_id FROM events WHERE request_id IS NOT NULL "
                              "LIMIT 1").fetchone()[0]
        assert trace(con, request).rows == trace(engine, request).rows
        # The window's days are the only ones read: the plan names the dt filter.
        plan = engine.con.execute("EXPLAIN SELECT count(*) FROM events WHERE dt >= DATE "
                                  "'2026-01-14'").fetchall()
        assert "2026-01-14" in str(plan)
    finally:
        engine.close()
        con.close()


def test_store_errors_are_one_line(tmp_path: Path, sample_and_store: tuple[Path, Path],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _, root = sample_and_store
    with pytest.raises(Exception, match="no Parquet store"):
        open_store(str(tmp_path / "missing"))
    with pytest.raises(UsageError, match="engine spark"):
        open_store("s3://bucket/events")
    with pytest.raises(UsageError, match="--store replaces"):
        with open_engine(CommonOptions(db="x.duckdb", store=str(root))):
            pass
    monkeypatch.setitem(sys.modules, "pyspark", None)  # as if it were not installed
    with pytest.raises(UsageError, match=r"pip install 'mlinvestigate\[spark\]'"):
        with open_engine(CommonOptions(store=str(root), engine="spark")):
            pass


def test_cli_store_and_spark_without_pyspark(sample_and_store: tuple[Path, Path]) -> None:
    db, root = sample_and_store
    mlinv = [sys.executable, "-c", "from mlinvestigate.cli import main; main()"]
    from_db = subprocess.run([*mlinv, "summary", "--db", str(db), "-f", "csv"],
                             capture_output=True, text=True, check=True).stdout
    from_store = subprocess.run([*mlinv, "summary", "--store", str(root), "-f", "csv"],
                                capture_output=True, text=True, check=True).stdout
    assert from_db == from_store
    without = ("import sys; sys.modules['pyspark'] = None; sys.argv = ['mlinv', 'slow', "
               f"'--store', {str(root)!r}, '--engine', 'spark']; "
               "from mlinvestigate.cli import main; main()")
    done = subprocess.run([sys.executable, "-c", without], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "pip install 'mlinvestigate[spark]'" in done.stderr


def test_ingest_parquet_without_a_database_points_at_the_stored_rejects(tmp_path: Path) -> None:
    log = tmp_path / "mixed.jsonl"
    log.write_text('{"event": "request_success", "timestamp": 1768262400, "latency_ms": 5}\n'
                   "WARNING: not json\n")
    root = tmp_path / "store"
    mlinv = [sys.executable, "-c", "from mlinvestigate.cli import main; main()"]
    done = subprocess.run([*mlinv, "ingest", str(log), "--parquet", str(root)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "1 rejects" in done.stderr and str(root / "_rejects") in done.stderr
    assert "mlinv rejects" not in done.stderr  # there is no database to ask
