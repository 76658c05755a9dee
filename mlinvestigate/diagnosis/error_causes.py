"""Error-type causes: the error type that carries a rise in errors, with its message, status
code, first and last failure, example request ids and missing hops. Every error rise has one,
so this kind ranks below a cause that explains why the errors happen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..investigations.filters import clock_text, pct_text, run, where_sql
from .causes import (
    MIN_EXPLAINED,
    Analysis,
    Cause,
    Context,
    cause_score,
    of_model,
    share_of,
    share_table,
    window_text,
)
from .contrast import Decomposition

if TYPE_CHECKING:
    pass

# --------------------------------------------------------------------------- error types

ERROR_EXAMPLES_SQL = """
SELECT arg_min(request_id, ts, 3) FILTER (WHERE request_id IS NOT NULL) AS ids,
       mode(error_message) AS message,
       mode(status_code) AS status_code,
       min(ts) AS first_seen,
       max(ts) AS last_seen,
       count(*) AS failures
FROM events
WHERE {where} AND ts >= $lo AND ts < $hi AND service = $e_service AND {model}
  AND error_type = $e_type AND {request_line}
"""

MISSING_HOPS_SQL = """
WITH failed AS (
    SELECT DISTINCT request_id FROM events
    WHERE {where} AND ts >= $lo AND ts < $hi AND service = $e_service AND {model}
      AND error_type = $e_type AND request_id IS NOT NULL AND {request_line}
)
SELECT count(*) AS failed,
       count(*) FILTER (WHERE request_id IN (
           SELECT request_id FROM events
           WHERE ts >= $lo - INTERVAL 5 MINUTE AND ts < $hi + INTERVAL 5 MINUTE
             AND service <> $e_service AND request_id IS NOT NULL)) AS seen_elsewhere,
       (SELECT count(DISTINCT service) FROM events
        WHERE ts >= $lo AND ts < $hi AND service <> $e_service AND {model}) AS other_services
FROM failed
"""


def error_cause(ctx: Context, analysis: Analysis, scope: tuple[str | None, str | None],
                 dec: Decomposition, change: float) -> list[Cause]:
    top = max((s for s in dec.shares if s.value is not None),
              key=lambda s: s.mix + s.rate, default=None)
    if top is None:
        return []
    explained = share_of(top.mix + top.rate, change)
    if explained < MIN_EXPLAINED:
        return []
    measure = analysis.measure
    detail = (f"{top.value} at {scope[0]}: {measure.text(top.x_before / dec.n_before)} → "
              f"{measure.text(top.x_after / dec.n_after)} of {of_model(scope[1])}requests, "
              f"{pct_text(100 * explained)} of the rise")
    return [Cause("error", f"{top.value} surged at {scope[0]}", detail, round(explained, 3),
                  cause_score("error", explained),
                  f"mlinv errors --service {scope[0]} {window_text(analysis)}",
                  subject=top.value, dimension="error_type", scope=scope,
                  evidence=share_table(f"{of_model(scope[1])}errors at {scope[0]} by error_type",
                                        dec, measure))]


def add_error_details(ctx: Context, analysis: Analysis, cause: Cause) -> None:
    """Examples, message, first and last failure, and missing hops of an error cause (two
    small queries over the bad side, so only for the error cause that is shown first)."""
    scope = cause.scope
    assert scope is not None
    contrast = analysis.contrast
    bad = analysis.after if analysis.bad_after else analysis.before
    lo, hi = contrast.start_of(bad.start), contrast.start_of(bad.stop)
    where, params = where_sql(ctx.filters)
    line_sql, line_params = ctx.kinds.request_line_sql()
    model_sql, model_params = (("model_id = $e_model", {"e_model": scope[1]}) if scope[1]
                               else ("model_id IS NULL", {}))
    bind = {**params, **line_params, **model_params, "lo": lo, "hi": hi, "e_service": scope[0],
            "e_type": cause.subject}
    ids, message, status_code, first, last, _failures = run(
        ctx.con, ERROR_EXAMPLES_SQL.format(where=where, model=model_sql, request_line=line_sql),
        bind, ctx.filters).fetchone() or (None,) * 6
    failed, seen_elsewhere, other_services = run(
        ctx.con, MISSING_HOPS_SQL.format(where=where, model=model_sql, request_line=line_sql),
        bind, ctx.filters).fetchone() or (0, 0, 0)
    code = f" (status {status_code})" if status_code is not None else ""
    cause.detail = cause.detail.replace(f"{cause.subject} at", f"{cause.subject}{code} at", 1)
    if first is not None:
        cause.detail += f"; first {clock_text(first)}, last {clock_text(last)}"
        cause.at = first
    if message:
        cause.detail += f"; message: {message!r}"
    if failed and other_services and seen_elsewhere == 0:
        cause.detail += (f"; no other service logged any of these {failed} requests (missing hop: "
                         "the call downstream never finished, or its line was lost)")
    elif failed and other_services and seen_elsewhere < failed:
        cause.detail += f"; {failed - seen_elsewhere} of {failed} have no line from another service"
    cause.examples = list(ids or [])
    if cause.examples:
        cause.next_command = f"mlinv trace {cause.examples[0]}"
