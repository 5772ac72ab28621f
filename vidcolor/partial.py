"""The hidden partial file an output is written to before it is renamed over its target.

Every output (photo or film) is written to ``.NAME.partial.EXT`` beside ``NAME.EXT`` and
renamed at the end, so a failed or interrupted run never leaves a half-written file under the
target's name. A run killed outright (kill -9, power loss) leaves the partial file behind;
the next run to the same target finds it, removes it and says so.
"""

from __future__ import annotations

import os
from pathlib import Path


def partial_path(target: Path) -> Path:
    """``dir/.NAME.partial.EXT`` for ``dir/NAME.EXT``."""
    return target.with_name(f".{target.stem}.partial{target.suffix}")


def claim_partial(target: Path) -> tuple[Path, list[str]]:
    """The partial path for ``target``, with a stale one from an earlier run removed.

    Returns:
        the path, and a notice for the user when a stale file was removed.
    Raises:
        OSError: the stale file cannot be removed.
    """
    partial = partial_path(target)
    if partial.exists() or partial.is_symlink():
        partial.unlink()
        return partial, [f"removed {partial}, a partial file left by an earlier run that did not finish"]
    return partial, []


def remove_partial(partial: Path) -> None:
    """Remove a partial file if there is one (a no-op where none was made: on a read-only file
    system even removing a missing file fails with EROFS, which must not hide the real error)."""
    if os.path.lexists(partial):
        partial.unlink()


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through ``PATH.tmp``, synced and renamed, so that a crash
    leaves the old file or the new one, never a part (journals and segment files)."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
