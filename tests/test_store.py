"""How every connection is set up: UTC, a memory limit, no network extensions, and where an
in-memory database spills."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from mlinvestigate import store
from mlinvestigate.errors import UsageError


def _setting(con, name: str) -> object:
    return con.execute("SELECT current_setting($name)", {"name": name}).fetchone()[0]


@pytest.mark.parametrize("where", ["memory", "file"])
def test_every_connection_is_pinned_to_utc_without_autoinstall(tmp_path: Path, where: str) -> None:
    db = store.MEMORY if where == "memory" else str(tmp_path / "x.duckdb")
    con = store.connect(db)
    assert _setting(con, "TimeZone") == "UTC"
    assert _setting(con, "autoinstall_known_extensions") is False
    assert _setting(con, "autoload_known_extensions") is False


def test_in_memory_database_spills_under_the_system_temp_directory_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spill = Path(_setting(store.connect(store.MEMORY), "temp_directory"))
    assert spill.parent == Path(tempfile.gettempdir())
    assert tmp_path not in spill.parents


def test_file_database_keeps_duckdbs_spill_directory_beside_the_file(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    spill = Path(_setting(store.connect(str(db)), "temp_directory"))
    assert spill.parent == tmp_path


def test_a_bad_memory_limit_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(store.MEMORY_LIMIT_ENV_VAR, "lots")
    with pytest.raises(UsageError, match="not a memory size"):
        store.connect(store.MEMORY)
