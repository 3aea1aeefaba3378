"""Errors a user can cause. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from a user (file, flag, config); the message names the input and the problem."""


class DataError(UserError):
    """A data file or data option that cannot be used."""


class ConfigError(UserError):
    """An unknown name or an out-of-range option."""


class StorageError(UserError):
    """A storage URL that cannot be opened or a study that does not exist."""


class WorkerStartError(UserError):
    """A trial worker process could not start (interpreter, install or import problem): the search stops."""
