"""Small helpers shared by the benchmark scripts: timing whole processes, peak RSS, medians,
machine facts and markdown tables. Nothing here imports mlinvestigate: the benchmarks measure
the installed `mlinv` command as a user runs it."""

from __future__ import annotations

import functools
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / "data"
"""Generated files live here (gitignored)."""

LNAV_FORMAT = BENCH_DIR / "lnav-mlinv-sample.json"
LNAV_TABLE = "mlinv_sample_log"

SAMPLE_COLUMNS: dict[str, str] = {
    "timestamp": "VARCHAR",  # ISO text on gateway lines, an epoch float on model-server lines
    "service": "VARCHAR",
    "event": "VARCHAR",
    "level": "VARCHAR",
    "request_id": "VARCHAR",
    "endpoint": "VARCHAR",
    "model_id": "VARCHAR",
    "client_id": "VARCHAR",
    "trace_id": "VARCHAR",
    "span_id": "VARCHAR",
    "parent_span_id": "VARCHAR",
    "status_code": "INTEGER",
    "latency_ms": "DOUBLE",
    "error_type": "VARCHAR",
    "error_message": "VARCHAR",
    "model_version": "VARCHAR",
    "version": "VARCHAR",
    "input_hash": "VARCHAR",
    "input_size": "BIGINT",
    "output_hash": "VARCHAR",
    "prediction": "VARCHAR",  # a number for fraud, a label for recsys
    "confidence": "DOUBLE",
    "cache_hit": "BOOLEAN",
    "features": "JSON",
    "memory_mb": "DOUBLE",
    "load_time_ms": "DOUBLE",
    "error": "VARCHAR",
}
"""Every key `mlinv sample` writes, with a type: the explicit schema for DuckDB's read_json."""


def sql_columns() -> str:
    """SAMPLE_COLUMNS as a DuckDB struct literal for read_json(columns=...)."""
    return "{" + ", ".join(f"'{k}': '{v}'" for k, v in SAMPLE_COLUMNS.items()) + "}"


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@functools.cache
def mlinv_exe() -> str:
    """The installed console script (`mlinv`), next to this interpreter when possible."""
    beside = Path(sys.executable).with_name("mlinv")
    if beside.exists():
        return str(beside)
    found = shutil.which("mlinv")
    if not found:
        sys.exit("bench: `mlinv` is not installed (pip install -e .)")
    return found


# --- running and timing ----------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    max_rss_kb: int | None
    returncode: int
    stdout: str = ""
    stderr: str = ""
    cpu_s: float | None = None
    """User + system CPU time of the measured process and its children: less sensitive than wall
    time to other work on a shared machine."""


_RSS_WRAPPER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.call(sys.argv[2:])\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "open(sys.argv[1], 'w').write(f'{u.ru_maxrss} {u.ru_utime} {u.ru_stime}')\n"
    "sys.exit(rc)\n"
)


def _rss_prefix(out: str) -> list[str]:
    """A command prefix that writes the child's peak RSS (KiB) and CPU seconds to `out`."""
    if Path("/usr/bin/time").exists():
        return ["/usr/bin/time", "-f", "%M %U %S", "-o", out]
    return [sys.executable, "-c", _RSS_WRAPPER, out]


def _read_usage(path: str) -> tuple[int | None, float | None]:
    try:
        text = Path(path).read_text().strip().splitlines()
    except OSError:
        return None, None
    # /usr/bin/time writes "Command exited with non-zero status N" before the numbers.
    for line in reversed(text):
        parts = line.split()
        if len(parts) == 3 and parts[0].isdigit():
            return int(parts[0]), float(parts[1]) + float(parts[2])
    return None, None


REPO = BENCH_DIR.parent


def _short(arg: str) -> str:
    """`mlinv`/`python` for the executables, paths relative to the repository root (the scripts'
    printed commands are meant to be run from there)."""
    if arg == mlinv_exe():
        return "mlinv"
    if arg == sys.executable:
        return "python"
    if arg.startswith(str(REPO) + "/"):
        return arg[len(str(REPO)) + 1:]
    return arg


def show(cmd: Sequence[str], stdin_cmd: Sequence[str] | None = None, stdout_path: str | None = None,
         env: dict[str, str] | None = None) -> str:
    """The shell form of a command, as printed and recorded in BENCHMARKS.md. A temporary HOME
    (used to isolate lnav's format directory) is shown as $LNAV_HOME."""
    text = shlex.join(_short(a) for a in cmd)
    if stdin_cmd:
        text = shlex.join(_short(a) for a in stdin_cmd) + " | " + text
    if stdout_path:
        text += " > " + shlex.quote(_short(stdout_path))
    if env:
        shown = {k: ("$LNAV_HOME" if k == "HOME" else shlex.quote(v)) for k, v in env.items()}
        text = " ".join(f"{k}={v}" for k, v in shown.items()) + " " + text
    return text


def run(
    cmd: Sequence[str],
    *,
    stdin_cmd: Sequence[str] | None = None,
    stdout_path: str | None = None,
    capture: bool = False,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> Run:
    """Run `cmd` as a whole process (optionally fed by `stdin_cmd` through a pipe, optionally
    writing stdout to a file); return its wall time and the peak RSS of `cmd` alone."""
    fd, rss_file = tempfile.mkstemp(prefix="bench-rss-")
    os.close(fd)
    full_env = {**os.environ, **(env or {})}
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    sink = open(stdout_path, "wb") if stdout_path else None  # noqa: SIM115
    try:
        start = time.perf_counter()
        feeder = None
        if stdin_cmd:
            feeder = subprocess.Popen(list(stdin_cmd), stdout=subprocess.PIPE, env=full_env)
        proc = subprocess.Popen(
            _rss_prefix(rss_file) + list(cmd),
            stdin=feeder.stdout if feeder else subprocess.DEVNULL,
            stdout=sink if sink else out,
            stderr=subprocess.PIPE,
            env=full_env,
        )
        if feeder and feeder.stdout:
            feeder.stdout.close()  # so the feeder gets SIGPIPE if cmd exits early
        stdout_b, stderr_b = proc.communicate()
        if feeder:
            feeder.wait()
        seconds = time.perf_counter() - start
    finally:
        if sink:
            sink.close()
    rss_kb, cpu_s = _read_usage(rss_file)
    result = Run(seconds, rss_kb, proc.returncode, (stdout_b or b"").decode(errors="replace"),
                 (stderr_b or b"").decode(errors="replace"), cpu_s)
    os.unlink(rss_file)
    if check and result.returncode != 0:
        raise RuntimeError(
            f"command failed ({result.returncode}): {show(cmd, stdin_cmd, stdout_path)}\n"
            f"{result.stderr[-2000:]}"
        )
    return result


@dataclass
class Measurement:
    name: str
    command: str
    runs: list[Run] = field(default_factory=list)
    note: str = ""

    @property
    def median_s(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def max_s(self) -> float:
        return max(r.seconds for r in self.runs)

    @property
    def median_cpu_s(self) -> float | None:
        values = [r.cpu_s for r in self.runs if r.cpu_s is not None]
        return statistics.median(values) if values else None

    @property
    def peak_rss_mb(self) -> float | None:
        values = [r.max_rss_kb for r in self.runs if r.max_rss_kb is not None]
        return max(values) / 1024 if values else None


# --- facts about the machine -------------------------------------------------------------------


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def _version(cmd: list[str]) -> str:
    exe = shutil.which(cmd[0])
    if not exe:
        return "not installed"
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "unknown"


def _default_memory_limit() -> str:
    try:
        from mlinvestigate.store import DEFAULT_MEMORY_LIMIT
    except ImportError:
        return "unknown"
    return str(DEFAULT_MEMORY_LIMIT)


def machine_facts() -> dict[str, str]:
    import duckdb

    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    commit = subprocess.run(["git", "-C", str(BENCH_DIR), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(BENCH_DIR), "status", "--porcelain", "--", "../mlinvestigate"],
                           capture_output=True, text=True).stdout.strip()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores / {mem_gib:.0f} GiB, {platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "mlinv": f"{_version([mlinv_exe(), '--version'])} (commit {commit}"
                 f"{', package has uncommitted changes' if dirty else ''})",
        "jq": _version(["jq", "--version"]),
        "lnav": _version(["lnav", "-V"]),
        "MLINV_MEMORY_LIMIT": os.environ.get("MLINV_MEMORY_LIMIT",
                                             f"(unset: {_default_memory_limit()} default)"),
        "load average at start (1/5/15 min)": load_average(),
    }


def print_facts(facts: dict[str, str]) -> None:
    for key, value in facts.items():
        print(f"- {key}: {value}")


# --- tables ------------------------------------------------------------------------------------


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(_looks_numeric(row[i]) for row in cells[1:]) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(
            c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric, strict=True)
        ) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2))
                         for w, num in zip(widths, numeric, strict=True)) + "|"
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])


def _looks_numeric(text: str) -> bool:
    t = text.replace(",", "").replace("×", "").replace("%", "").strip()
    if t in ("", "–"):
        return True
    try:
        float(t)
    except ValueError:
        return False
    return True


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds:.3f}" if seconds < 10 else f"{seconds:.1f}"


def fmt_rate(lines: int, seconds: float) -> str:
    return f"{lines / seconds / 1e6:.3f}"


def fmt_mb(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def dump_json(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def free_gb(path: Path) -> float:
    return shutil.disk_usage(path).free / 1e9
