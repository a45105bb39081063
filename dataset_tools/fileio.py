"""Writing files so that an existing one is never left half-written (datasets, grids, images, checkpoints)."""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync it, then rename it over `path`.

    A crash or a full disk leaves either the old file or the new one, never a mix; the temporary file is
    removed when the write fails."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class FolderLock:
    """An exclusive lock on an output folder (a dataset, a training run), held until release() or exit.

    flock on `<folder>/.lock`: the kernel drops it when the holder dies, so a crashed run never leaves the
    folder locked; a second process is refused at once with a message naming the folder."""

    def __init__(self, folder: str | os.PathLike, activity: str = "writing this folder"):
        import fcntl

        from .errors import VoxliftError

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._file = open(self.folder / ".lock", "a+")  # noqa: SIM115 (held for the lock's lifetime)
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise VoxliftError(
                f"{self.folder}: another voxlift process is {activity} (wait for it to finish or stop it)"
            ) from None

    def release(self) -> None:
        import fcntl

        if not self._file.closed:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
