"""The SQL side of drift: every count, quantile and histogram comes from DuckDB.

Python never sees raw values. A *scan* looks at groups of rows, each with an integer key:
0 is the reference window, 1 the current window, or with ``--every`` 1 + the interval index.
For each group it returns small summaries per feature:

* **profiles** (:meth:`Scan.profile`, the reference only): n, min, max, population std,
  skewness, the deciles and a 201-point quantile grid (``quantile_cont``, linear);
* **counts** (:meth:`Scan.buckets`, one pass per source grouped by group and scope): rows,
  present, usable and non-finite values per scope (summed into each feature's population and
  missing rate), one ``histogram(x, boundaries)`` per numeric feature over the union of the
  PSI edges and the quantile grid (a binary search per value), the sums of how far values lie
  beyond the reference min/max, and ``histogram(x)`` value counts per categorical feature.

Event columns are read straight from ``events`` (columnar, cheap). Record fields are read from
``attrs`` JSON text, which is the expensive part (reading and parsing the text): it is done
once per command into a temporary table (:data:`ATTRS_TABLE`) holding only the fields needed,
only for the rows of the scopes that log them and only inside the windows.

All values are bound as parameters. The only text put into SQL is our own (column names,
group keys) and JSON paths of field names checked by :func:`features.check_field_name`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..investigations.filters import Filters, where_sql
from .features import Feature, category_text, json_path_literal, record_value_sql
from .stats import DECILES

if TYPE_CHECKING:
    import duckdb

ATTRS_TABLE = "mlinv_drift_attrs"

GRID_POINTS = 200
"""The KS/Wasserstein grid is the reference quantiles at i/200, i = 0 … 200 (min and max
included): every grid bucket holds about 0.5 % of the reference."""

EXACT_QUANTILE_LIMIT = 200_000
"""Reference quantiles (PSI decile edges, the grid) are exact up to this many values; above it
they come from a deterministic 1-in-k subsample (by row id) of about
:data:`QUANTILE_SAMPLE_TARGET` values. The counts in those bins are always exact."""

ATTRS_EXACT_ROWS = 200_000
"""Record fields live in the JSON text column, whose reading dominates the cost on big
databases (reading and parsing run at a few hundred thousand rows per second per core). A
group with more rows than this has its record fields read from evenly spread blocks of
consecutive rows (deterministic: the same database gives the same blocks); event columns are
always read in full."""

ATTRS_SAMPLE_ROWS = 100_000
"""About this many rows per group are read for record fields when a group is sampled."""

COLUMN_EXACT_ROWS = 1_500_000
"""Event columns are read in full up to this many rows per group; a bigger group is read from
evenly spread blocks like record fields, but ten times more rows (:data:`COLUMN_SAMPLE_ROWS`),
since a column costs about a tenth of a record to read. ``--exact`` reads everything."""

COLUMN_SAMPLE_ROWS = 500_000

BLOCK_ROWS = 8_192

QUANTILE_SAMPLE_TARGET = 100_000

QUANTILE_GRID: tuple[float, ...] = tuple(i / GRID_POINTS for i in range(GRID_POINTS + 1))

DECILE_POSITIONS: tuple[int, ...] = tuple(QUANTILE_GRID.index(d) for d in DECILES)
"""Where the deciles sit on the grid: PSI's edges and the KS grid come from one quantile call."""


@dataclass(frozen=True)
class Part:
    """One group of rows: its key (SQL integer expression) and condition (SQL on events)."""

    key_sql: str
    condition_sql: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Population:
    """Counts of one feature in one group: the rows that should log it and what they logged."""

    rows: int = 0
    present: int = 0
    valid: int = 0
    nonfinite: int = 0

    @property
    def unusable(self) -> int:
        """Present but not usable: text where a number is expected, an object, an unparsed
        latency. NaN/±inf are counted in `nonfinite`, not here."""
        return max(self.present - self.valid - self.nonfinite, 0)

    @property
    def missing(self) -> int:
        return max(self.rows - self.valid, 0)

    def missing_rate(self) -> float | None:
        return self.missing / self.rows if self.rows else None

    def add(self, other: Population) -> None:
        self.rows += other.rows
        self.present += other.present
        self.valid += other.valid
        self.nonfinite += other.nonfinite


@dataclass
class Profile:
    """Numeric summary of one feature in one group (over its finite values)."""

    n: int
    minimum: float | None
    maximum: float | None
    std: float | None
    skewness_g1: float | None
    deciles: tuple[float, ...] = ()
    grid: tuple[float, ...] = ()
    sampled_every: int = 1
    """1 when the quantiles are exact; k when they come from a 1-in-k subsample."""


@dataclass
class Buckets:
    """Counts of one numeric feature in one group over a boundary list.

    ``counts[j]`` is the number of values in (b[j-1], b[j]] (j = 0: x <= b[0]); the last
    entry counts x > b[-1]. ``above``/``below`` are sums of (x − hi) over x > hi and of
    (lo − x) over x < lo, with hi/lo the reference max/min: the exact Wasserstein tails.
    ``tail_sums`` are Σx over x <= c0, x <= c1, x > c2 and x > c3 at the :data:`TailCuts` (empty
    when the grid is too short): with them the widest grid buckets, the outer ones, need no
    guess of where their values lie."""

    counts: np.ndarray
    above: float
    below: float
    n: int
    tail_sums: tuple[float, ...] = ()


Limits = tuple[float, float, tuple[float, ...]]
"""Per numeric feature: the reference min and max, and the tail cuts (grid points 1, 2, -3, -2)."""


class Scan:
    """Summaries of a set of features over groups of rows (see the module docstring)."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        filters: Filters,
        features: Sequence[Feature],
        parts: Sequence[Part],
    ) -> None:
        self.con = con
        self.filters = filters
        self.features = list(features)
        self.parts = list(parts)
        self.index = {id(f): i for i, f in enumerate(self.features)}
        self._attrs_ready = False
        self._column_blocks: dict[int, BlockSample | None] = {}

    def sample_columns(self, blocks: Mapping[int, BlockSample | None]) -> None:
        """Read event columns of the parts with a sample in `blocks` from that sample only."""
        self._column_blocks = dict(blocks)

    # ------------------------------------------------------------------ relations

    def _by_source(self, source: str) -> list[tuple[int, Feature]]:
        return [(i, f) for i, f in enumerate(self.features) if f.source == source]

    def _filter_params(self) -> tuple[str, dict[str, Any]]:
        return where_sql(self.filters)

    def _events_base(self, columns: list[tuple[int, Feature]], need_rid: bool,
                     sample: BlockSample | None) -> tuple[str, dict[str, Any]]:
        where, params = self._filter_params()
        if sample is not None:
            where = f"({where}) AND {sample.sql()}"
        # Scope columns stay separate (grouping on them is cheaper than on a concatenation);
        # rowid drives the deterministic quantile subsample.
        selects = ["ts", "model_version", "service", "event", "model_id",
                   "rowid AS rid" if need_rid else "0 AS rid"]
        for i, feature in columns:
            spec = feature.column
            assert spec is not None
            selects.append(f"{spec.value_sql} AS v{i}")
            selects.append(f"({spec.present_sql}) AS p{i}")
        return f"(SELECT {', '.join(selects)} FROM events WHERE {where})", params

    def prepare_attrs(
        self, events: Sequence[str], blocks: Mapping[int, BlockSample | None]
    ) -> None:
        """Extract the record fields of the attrs features into the temporary table, once.

        Only rows whose event name logs some record field (`events`) inside some group are
        read, and for a group with a sample in `blocks` only the rows of that sample."""
        attrs = self._by_source("attrs")
        if not attrs or self._attrs_ready:
            return
        where, params = self._filter_params()
        params = dict(params)
        params["attr_events"] = list(events)
        paths = ", ".join(json_path_literal(f.name) for _, f in attrs)
        values: list[str] = []
        for position, (i, feature) in enumerate(attrs, start=1):
            item = f"j[{position}]"
            values.append(f"{record_value_sql(feature.kind, item)} AS v{i}")
            values.append(f"coalesce(json_type({item}) <> 'NULL', false) AS p{i}")
        # One piece per group, so each piece's row-id ranges and time bounds reach the scan (an
        # OR across groups would not); a row in two groups is kept once per group.
        pieces: list[str] = []
        for k, part in enumerate(self.parts):
            condition = f"({part.condition_sql})"
            sample = blocks.get(k)
            if sample is not None:
                condition = f"{condition} AND {sample.sql()}"
            params.update(part.params)
            flags = ", ".join(f"{'true' if j == k else 'false'} AS in{j}" for j in range(len(self.parts)))
            # The event test sits in a CASE, not in WHERE: any filter the scan cannot take
            # makes DuckDB read every row's record before sampling (2.0 s against 0.3 s for
            # a 9 % sample of 10 M rows). Rows of other events stay, with no fields.
            pieces.append(
                f"SELECT ts, service, event, model_id, rowid AS rid, {flags}, "
                f"CASE WHEN list_contains($attr_events, event) THEN json_extract(attrs, [{paths}]) END AS j "
                f"FROM events WHERE ({where}) AND {condition}"
            )
        in_columns = ", ".join(f"in{k}" for k in range(len(self.parts)))
        sql = f"""
            CREATE OR REPLACE TEMP TABLE {ATTRS_TABLE} AS
            SELECT ts, service, event, model_id, rid, {in_columns}, {", ".join(values)}
            FROM ({" UNION ALL ".join(pieces)})
        """
        self.con.execute(sql, params)
        self._attrs_ready = True

    def _rows(self, source: str, parts: Sequence[int] | None = None, *,
              need_rid: bool = False) -> tuple[str, dict[str, Any], list[int]]:
        """UNION ALL of the chosen parts with win, the scope columns, rid and per feature x{i},
        p{i}, nf{i}."""
        columns = self._by_source(source)
        if not columns:
            return "", {}, []
        chosen = range(len(self.parts)) if parts is None else parts
        selects: list[str] = []
        for i, feature in columns:
            if feature.kind == "numeric":
                selects.append(f"CASE WHEN isfinite(v{i}) THEN v{i} END AS x{i}")
                selects.append(f"(v{i} IS NOT NULL AND NOT isfinite(v{i})) AS nf{i}")
            else:
                selects.append(f"v{i} AS x{i}")
                selects.append(f"false AS nf{i}")
            selects.append(f"p{i}")
        params: dict[str, Any] = {}
        pieces: list[str] = []
        if source == "column":
            for k in chosen:
                part = self.parts[k]
                base, base_params = self._events_base(columns, need_rid, self._column_blocks.get(k))
                params.update(base_params)
                params.update(part.params)
                pieces.append(
                    f"SELECT {part.key_sql} AS win, service, event, model_id, rid, {', '.join(selects)} "
                    f"FROM {base} WHERE {part.condition_sql}"
                )
        else:
            for k in chosen:
                # Membership was decided when the table was built: no parameters here.
                part = self.parts[k]
                pieces.append(
                    f"SELECT {part.key_sql} AS win, service, event, model_id, rid, {', '.join(selects)} "
                    f"FROM {ATTRS_TABLE} WHERE in{k}"
                )
        return "\nUNION ALL\n".join(pieces), params, [i for i, _ in columns]

    # ------------------------------------------------------------------ queries

    def attrs_rows(self, part: int) -> int:
        """Rows of the temporary record-field table in one part (0 when there is none)."""
        if not self._attrs_ready:
            return 0
        return int(self.con.execute(f"SELECT count(*) FROM {ATTRS_TABLE} WHERE in{int(part)}").fetchone()[0])

    def profile(
        self,
        source: str,
        numeric: Sequence[int],
        *,
        parts: Sequence[int],
        quantiles_for: int | None,
        sample_every: Mapping[int, int],
    ) -> dict[int, dict[int, Profile]]:
        """group → feature index → Profile for the numeric features `numeric` of `source`.

        Quantiles are computed only for the group `quantiles_for` (the reference), on every
        `sample_every[i]`-th row by hash when that is above 1."""
        wanted = [i for i in numeric if self.features[i].source == source]
        if not wanted:
            return {}
        sampling = any(sample_every.get(i, 1) > 1 for i in wanted)
        rows_sql, params, _ = self._rows(source, parts, need_rid=sampling)
        params = dict(params)
        params["grid"] = list(QUANTILE_GRID)
        aggregates: list[str] = []
        for i in wanted:
            aggregates += [f"count(x{i})", f"min(x{i})", f"max(x{i})", f"stddev_pop(x{i})",
                           f"skewness(x{i})"]
            if quantiles_for is not None:
                every = max(int(sample_every.get(i, 1)), 1)
                condition = f"win = {int(quantiles_for)}"
                if every > 1:
                    condition += f" AND rid % {every} = 0"
                # The deciles are grid points (k/10 == 20k/200 exactly): one quantile state, not two.
                aggregates.append(f"quantile_cont(x{i}, $grid) FILTER (WHERE {condition})")
        sql = f"SELECT win, {', '.join(aggregates)} FROM ({rows_sql}) GROUP BY win"
        width = 6 if quantiles_for is not None else 5
        result: dict[int, dict[int, Profile]] = {}
        for row in self.con.execute(sql, params).fetchall():
            win = int(row[0])
            for position, i in enumerate(wanted):
                values = row[1 + width * position : 1 + width * (position + 1)]
                n = int(values[0])
                skew = values[4]
                g1 = None
                if skew is not None and math.isfinite(skew) and n > 2:
                    g1 = skew * (n - 2) / math.sqrt(n * (n - 1))
                profile = Profile(n, values[1], values[2], values[3], g1)
                if quantiles_for is not None and win == quantiles_for and values[5] is not None:
                    profile.grid = _monotone(values[5], values[1], values[2])
                    profile.deciles = tuple(profile.grid[j] for j in DECILE_POSITIONS)
                    profile.sampled_every = max(int(sample_every.get(i, 1)), 1)
                result.setdefault(win, {})[i] = profile
        if quantiles_for is not None:
            self._requantile(source, result.get(quantiles_for, {}), quantiles_for, sample_every)
        return result

    def _requantile(self, source: str, profiles: dict[int, Profile], group: int,
                    sample_every: Mapping[int, int]) -> None:
        """Quantiles again, for the features whose 1-in-k subsample was too thin.

        `sample_every` comes from row counts, which only bound a feature's value count: a
        field logged on one row in a thousand would keep a handful of values (or none). Those
        features are redone with k from their own count, in one more pass; dense features,
        the usual case, cost nothing more."""
        redo: dict[int, int] = {}
        for i, profile in profiles.items():
            every = max(int(sample_every.get(i, 1)), 1)
            if every > 1 and profile.n > 0 and profile.n // every < QUANTILE_SAMPLE_TARGET // 10:
                redo[i] = (1 if profile.n <= EXACT_QUANTILE_LIMIT
                           else max(profile.n // QUANTILE_SAMPLE_TARGET, 1))
        if not redo:
            return
        rows_sql, params, _ = self._rows(source, [group], need_rid=any(k > 1 for k in redo.values()))
        params = dict(params)
        params["grid"] = list(QUANTILE_GRID)
        aggregates = []
        for i, every in redo.items():
            condition = f"rid % {every} = 0" if every > 1 else "true"
            aggregates.append(f"quantile_cont(x{i}, $grid) FILTER (WHERE {condition})")
        row = self.con.execute(f"SELECT {', '.join(aggregates)} FROM ({rows_sql})", params).fetchone()
        for (i, every), grid in zip(redo.items(), row, strict=True):
            profile = profiles[i]
            if grid is None:
                continue
            profile.grid = _monotone(grid, profile.minimum, profile.maximum)
            profile.deciles = tuple(profile.grid[j] for j in DECILE_POSITIONS)
            profile.sampled_every = every

    def buckets(
        self,
        source: str,
        boundaries: Mapping[int, Sequence[float]],
        limits: Mapping[int, Limits],
    ) -> tuple[dict[int, dict[int, Buckets]], dict[int, dict[int, dict[str, int]]],
               dict[int, dict[str, dict[int, Population]]]]:
        """Per group: bucket counts of each numeric feature over `boundaries`, value counts of
        each categorical feature, and per (group, scope) the counts (rows, present, usable,
        non-finite) of every feature."""
        columns = self._by_source(source)
        if not columns:
            return {}, {}, {}
        numeric = [i for i, f in columns if i in boundaries]
        categories = [i for i, f in columns if f.kind == "categorical"]
        rows_sql, params, indexes = self._rows(source)
        params = dict(params)
        # Two statements over the same rows: a histogram state per (group, scope) costs more
        # than a second pass, so counts are grouped by scope and histograms only by group.
        counting = ["count(*)"]
        for i in indexes:
            nonfinite = f"count_if(nf{i})" if self.features[i].kind == "numeric" else "0"
            counting += [f"count_if(p{i})", f"count(x{i})", nonfinite]
        sql = (f"SELECT win, service, event, model_id, {', '.join(counting)} FROM ({rows_sql}) "
               "GROUP BY ALL")
        counts = scope_populations(self.con.execute(sql, params).fetchall(), indexes)
        numeric_out: dict[int, dict[int, Buckets]] = {}
        categorical_out: dict[int, dict[int, dict[str, int]]] = {}
        if not numeric and not categories:
            return numeric_out, categorical_out, counts
        aggregates: list[str] = []
        widths: dict[int, int] = {}
        for i in numeric:
            params[f"b{i}"] = [float(b) for b in boundaries[i]]
            lo, hi, cuts = limits[i]
            params[f"lo{i}"] = float(lo)
            params[f"hi{i}"] = float(hi)
            aggregates += [
                f"histogram(x{i}, $b{i})",
                f"sum(CASE WHEN x{i} > $hi{i} THEN x{i} - $hi{i} END)",
                f"sum(CASE WHEN x{i} < $lo{i} THEN $lo{i} - x{i} END)",
            ]
            for k, cut in enumerate(cuts):
                params[f"c{i}_{k}"] = float(cut)
                test = "<=" if k < len(cuts) // 2 else ">"
                aggregates.append(f"sum(CASE WHEN x{i} {test} $c{i}_{k} THEN x{i} END)")
            widths[i] = 3 + len(cuts)
        for i in categories:
            aggregates.append(f"histogram(x{i})")
        sql = f"SELECT win, {', '.join(aggregates)} FROM ({rows_sql}) GROUP BY win"
        for row in self.con.execute(sql, params).fetchall():
            win = int(row[0])
            offset = 1
            for i in numeric:
                histogram, above, below, *sums = row[offset : offset + widths[i]]
                offset += widths[i]
                per_bucket = _aligned_counts(histogram, boundaries[i])
                numeric_out.setdefault(win, {})[i] = Buckets(
                    per_bucket, float(above or 0.0), float(below or 0.0), int(per_bucket.sum()),
                    tuple(float(v or 0.0) for v in sums),
                )
            for position, i in enumerate(categories):
                histogram = row[offset + position] or {}
                categorical_out.setdefault(win, {})[i] = {
                    category_text(k): int(v) for k, v in histogram.items() if v
                }
        return numeric_out, categorical_out, counts


@dataclass(frozen=True)
class BlockSample:
    """Evenly spread blocks of consecutive rows: from `low`, every `stride` rows the next
    `size` ones, up to `high` (row ids).

    Written as one arithmetic condition on rowid: DuckDB then reads (and decompresses) only the
    chosen rows' records, about in proportion to the share sampled, where a list of
    ``rowid BETWEEN`` ranges joined by OR cost 0.8 s on 10 M rows for 360 ranges before a
    single record was read."""

    low: int
    high: int
    stride: int
    size: int

    @property
    def rows(self) -> int:
        """Row ids covered (rows deleted since ingest, if any, are not subtracted)."""
        span = self.high - self.low + 1
        return (span // self.stride) * self.size + min(span % self.stride, self.size)

    def sql(self) -> str:
        # Our own integers: safe in SQL. The BETWEEN lets the scan skip row groups outside.
        return (f"(rowid BETWEEN {int(self.low)} AND {int(self.high)} "
                f"AND (rowid - {int(self.low)}) % {int(self.stride)} < {int(self.size)})")


def block_sample(
    con: duckdb.DuckDBPyConnection,
    filters: Filters,
    part: Part,
    rows: int,
    *,
    target: int,
    min_blocks: int = 1,
    block: int = BLOCK_ROWS,
) -> BlockSample | None:
    """Evenly spread blocks holding about `target` of the part's `rows` rows, or None when
    reading everything costs little more. Events are stored in ingest order, which is time
    order within a file, so the blocks spread over the window's time as well."""
    if rows <= target:
        return None
    where, params = where_sql(filters)
    low, high = con.execute(f"SELECT min(rowid), max(rowid) FROM events WHERE ({where}) AND "
                            f"({part.condition_sql})", {**params, **part.params}).fetchone()
    if low is None:
        return None
    count = max(min_blocks, math.ceil(target / block))
    size = max(min(block, target // count), 256)
    span = int(high) - int(low) + 1
    if count * size >= span:
        return None
    return BlockSample(int(low), int(high), span // count, size)


def scope_populations(rows: Sequence[Sequence[Any]], indexes: Sequence[int]
                      ) -> dict[int, dict[str, dict[int, Population]]]:
    """group → scope → feature → Population from the counting statement's rows (group, service,
    event, model_id, rows, then present, usable, non-finite per feature), on either engine."""
    counts: dict[int, dict[str, dict[int, Population]]] = {}
    for row in rows:
        win, scope, total = int(row[0]), scope_key(row[1], row[2], row[3]), int(row[4])
        per_feature: dict[int, Population] = {}
        for position, i in enumerate(indexes):
            present, valid, nonfinite = row[5 + 3 * position : 8 + 3 * position]
            per_feature[i] = Population(total, int(present), int(valid), int(nonfinite))
        counts.setdefault(win, {})[scope] = per_feature
    return counts


def scope_key(service: str | None, event: str | None, model_id: str | None) -> str:
    """The scope of a row as text, the same as features.SCOPE_SQL computes in SQL."""
    return "|".join(part or "" for part in (service, event, model_id))


def _monotone(quantiles: Sequence[float], low: float, high: float) -> tuple[float, ...]:
    """Quantiles as a non-decreasing tuple inside [low, high]: DuckDB's linear interpolation
    between two equal values can come out one ulp off (1843.2000000000003 between 1843.2s)."""
    values = np.clip(np.maximum.accumulate(np.asarray(quantiles, dtype=np.float64)), low, high)
    return tuple(float(v) for v in values)


def _aligned_counts(histogram: Mapping[float, int] | None, boundaries: Sequence[float]) -> np.ndarray:
    """DuckDB's histogram map as counts per boundary (x <= b, right-closed) plus overflow (DuckDB
    keys it +inf; any key that is not a boundary lands there)."""
    size = len(boundaries)
    if not histogram:
        return np.zeros(size + 1, dtype=np.int64)
    edges = np.asarray(boundaries, dtype=np.float64)
    keys = np.fromiter((float(k) for k in histogram), dtype=np.float64, count=len(histogram))
    values = np.fromiter((int(v) for v in histogram.values()), dtype=np.int64, count=len(histogram))
    position = np.searchsorted(edges, keys)
    exact = (position < size) & (edges[np.minimum(position, size - 1)] == keys)
    position = np.where(exact, position, size)
    counts = np.zeros(size + 1, dtype=np.int64)
    np.add.at(counts, position, values)
    return counts
