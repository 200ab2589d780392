"""Errors raised when a vision backend cannot get at its model weights.

They subclass the built-in exceptions callers would catch anyway (``FileNotFoundError``,
``ValueError``) so generic handlers keep working, while the UI and the CLI can catch the
specific class and show the one fix that helps: fetching the model again.
"""

from __future__ import annotations

from pathlib import Path


class ModelFileMissing(FileNotFoundError):
    """A backend's weight file is not where it should be.

    The message names the file and the command that downloads it, because a missing file
    is nearly always a fresh install that has not fetched its models yet.
    """

    def __init__(self, path: str | Path, fetch_name: str | None = None) -> None:
        self.path = Path(path)
        self.fetch_name = fetch_name or self.path.stem  # manifest names are file stems
        message = f"model file not found: {self.path} (run `aas models fetch {self.fetch_name}`)"
        super().__init__(message)
        # FileNotFoundError(msg) leaves filename unset; set it so ``err.filename`` is useful.
        self.filename = str(self.path)

    def __str__(self) -> str:
        return str(self.args[0])


class ModelFileCorrupt(ValueError):
    """A weight file exists but cannot be used (bad checksum, truncated, wrong format)."""

    def __init__(self, path: str | Path, reason: str, fetch_name: str | None = None) -> None:
        self.path = Path(path)
        self.reason = reason
        self.fetch_name = fetch_name or self.path.stem
        super().__init__(
            f"model file unusable: {self.path}: {reason} (delete it and run `aas models fetch {self.fetch_name}`)"
        )


def require_file(path: str | Path, fetch_name: str | None = None) -> Path:
    """Return ``path`` as a ``Path`` if it is an existing file, else raise :class:`ModelFileMissing`."""
    p = Path(path)
    if not p.is_file():
        raise ModelFileMissing(p, fetch_name)
    return p
