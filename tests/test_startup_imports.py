"""A query command's start stays lean: each module below costs tens to hundreds of
milliseconds to import, and a command that does not need it must not load it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["investigation_fixtures"]

HEAVY = ("duckdb", "pyarrow", "textual", "pyspark", "scipy", "pandas")
"""`duckdb` is the full package (its pure-Python relation API: ~150 ms); queries use the engine
module `_duckdb` through mlinvestigate.duckdb_core."""

PROBE = """
import contextlib, io, json, sys
args, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["mlinv", *args]
code = 0
from mlinvestigate.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main()
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "loaded": [m for m in heavy if m in sys.modules]}))
"""


def _loaded(args: list[str]) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("command", [["summary"], ["slow"], ["trace", "no-such-request"], ["throughput"],
                                     ["sql", "SELECT count(*) FROM events"], ["info"]])
def test_query_commands_load_nothing_heavy(command: list[str], sample_db: Path, tmp_path: Path) -> None:
    # A copy: `info` opens for writing (migrations), and this process may hold the sample open.
    db = tmp_path / "copy.duckdb"
    shutil.copyfile(sample_db, db)
    outcome = _loaded([*command, "--db", str(db)])
    assert outcome["code"] in (0, 1, None)
    assert outcome["loaded"] == []


def test_ingest_loads_the_whole_duckdb_package(tmp_path: Path, sample_log: Path) -> None:
    # Arrow data can be registered only once `import duckdb` has set up its Arrow scans.
    outcome = _loaded(["ingest", str(sample_log), "--db", str(tmp_path / "x.duckdb"), "--quiet"])
    assert outcome["code"] in (0, None)
    assert "duckdb" in outcome["loaded"] and "pyarrow" in outcome["loaded"]
