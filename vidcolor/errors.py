"""The exception types the CLI turns into one-line error messages."""

from __future__ import annotations

from pathlib import Path


class VidcolorError(Exception):
    """A user-facing failure: bad input, a bad weight file, an unwritable output."""


class OutputError(VidcolorError):
    """A failure to write an output file; the message names the output, not the input."""

    def __init__(self, path: Path, error: BaseException | str) -> None:
        reason = error if isinstance(error, str) else getattr(error, "strerror", None) or str(error)
        super().__init__(f"{path}: could not write ({reason})")
        self.path = path


class TruncatedFilmError(VidcolorError):
    """A film whose frames end well before the length it declares (``--accept-truncated`` takes it)."""
