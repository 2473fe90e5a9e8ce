"""Errors that mean the user gave bad input (exit code 2, one clear message)."""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A problem with the user's input; the CLI prints it without a traceback and exits 2."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = str(path) if path is not None else None
        self.message = message
        super().__init__(f"{path}: {message}" if path is not None else message)
