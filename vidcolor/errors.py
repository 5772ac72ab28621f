"""The exception types the CLI turns into one-line error messages, and where it does."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
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


@contextlib.contextmanager
def one_file(source: Path, report: Callable[[str], None]) -> Iterator[None]:
    """The one place where a file's failure becomes a one-line error while the batch goes on.

    A :class:`VidcolorError` is reported as it is (it names the input, or the output when
    writing failed); running out of memory and any other exception are reported against
    ``source``. Interrupts pass through.
    """
    try:
        yield
    except VidcolorError as error:
        report(str(error))
    except MemoryError:
        report(f"{source}: not enough memory")
    except Exception as error:  # noqa: BLE001 - one file's failure must not end the batch
        report(f"{source}: unexpected {type(error).__name__}: {error} (please report this)")
