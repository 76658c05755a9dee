"""Messages from the worker threads to the screen (`post_message` is thread-safe).

Progress messages can replace an unhandled earlier one of their kind: during a burst of lines
the screen only needs the newest counts, not every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from ..result import Result
from .feed import FeedStatus
from .panels import Clock, Frame


@dataclass
class FeedProgress(Message):
    """The ingestion worker committed lines (or the stream ended, or it failed)."""

    status: FeedStatus

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, FeedProgress)


@dataclass
class ClockRead(Message):
    """The database's newest event and counts, read at the start of a refresh."""

    clock: Clock


@dataclass
class PanelData(Message):
    """A worker finished one group of panels for `frame`."""

    group: str
    frame: Frame
    data: Any
    seconds: float
    """How long the queries took."""


@dataclass
class PanelFailed(Message):
    """A worker's queries failed; the panels of the group say why, the app stays open."""

    group: str
    generation: int
    error: str


@dataclass
class TraceReady(Message):
    """`trace()` answered for a request id (or failed with a message for the user)."""

    request_id: str
    result: Result | None
    error: str | None = None
