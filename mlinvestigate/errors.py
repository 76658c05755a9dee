"""Errors shown to users as one line. Only the CLI turns them into exit codes."""

from __future__ import annotations


class MLInvestigateError(Exception):
    """An error with a message meant for the person at the terminal."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UsageError(MLInvestigateError):
    """A bad option, an unparseable time or duration, a bad rule or config file."""

    exit_code = 2


class InputError(MLInvestigateError):
    """Input that cannot be read at all (missing file, unreadable compression)."""

    exit_code = 3


class StoreError(MLInvestigateError):
    """The database cannot be opened or is in use by another process."""

    exit_code = 4


class EmptyResult(MLInvestigateError):
    """A query matched nothing; the CLI prints the message and exits 1."""

    exit_code = 1
