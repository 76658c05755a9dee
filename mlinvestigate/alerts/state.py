"""The Prometheus alert state machine (rules/alerting.go, v3), replayed over a history.

At each evaluation time t, for one label set:

* condition true: an inactive alert becomes pending with ActiveAt = t; KeepFiringSince is
  cleared; a pending alert fires once t − ActiveAt ≥ `for` (with `for` 0, at once).
* condition false (Prometheus: the series is absent): a pending alert is dropped, without a
  notification; a firing alert with `keep_firing_for` sets KeepFiringSince = t if unset and
  keeps firing while t − KeepFiringSince < keep_firing_for; otherwise it resolves.

Pure Python over short lists: the expensive part (the signals) is already vectorised, and a
branchy loop over a few thousand steps reads better than any array trick.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

INACTIVE = "inactive"
PENDING = "pending"
FIRING = "firing"


def replay(conditions: Sequence[bool], times: Sequence[float], for_s: float = 0.0,
           keep_firing_for_s: float = 0.0) -> list[str]:
    """The state after each evaluation; `times` in seconds, increasing."""
    states: list[str] = []
    state = INACTIVE
    active_at = 0.0
    keep_since: float | None = None
    for condition, t in zip(conditions, times, strict=True):
        if condition:
            keep_since = None
            if state == INACTIVE:
                state, active_at = PENDING, t
            if state == PENDING and t - active_at >= for_s:
                state = FIRING
        elif state == PENDING:
            state = INACTIVE
        elif state == FIRING:
            if keep_since is None:
                keep_since = t
            if t - keep_since >= keep_firing_for_s:
                state, keep_since = INACTIVE, None
        states.append(state)
    return states


@dataclass(frozen=True)
class Episode:
    """One alert from pending to its end, as indexes into the evaluations."""

    active: int
    """First evaluation with the condition true (ActiveAt)."""
    fired: int | None
    """First firing evaluation; None when it never fired (dropped while pending, or still
    pending at the end)."""
    ended: int | None
    """First evaluation after it, in which the alert is inactive; None at the end still active."""


def episodes(states: Sequence[str]) -> list[Episode]:
    """The runs of pending/firing states, each with when it became active, fired and ended."""
    found: list[Episode] = []
    start: int | None = None
    fired: int | None = None
    for i, state in enumerate(states):
        if state == INACTIVE:
            if start is not None:
                found.append(Episode(start, fired, i))
            start, fired = None, None
            continue
        if start is None:
            start = i
        if state == FIRING and fired is None:
            fired = i
    if start is not None:
        found.append(Episode(start, fired, None))
    return found
