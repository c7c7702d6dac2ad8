"""An exclusive lock for a read-modify-write of one file, and the cleanup it allows.

The lock is an ``fcntl.flock`` on a sibling file (``.NAME.lock``), taken before
the file is read and released after the new version is renamed into place, so
two ``allocgate bless`` runs writing different workloads both land. The lock
file is removed by its holder; a waiter that wakes up holding the lock of a
removed file tries again, so the removal cannot let two writers in at once.
A kernel lock dies with its process: a killed writer never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from allocgate.errors import AllocgateError


def lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


def temp_prefix(path: Path) -> str:
    """The prefix of the temporary files written next to ``path`` (see atomic writes)."""
    return f".{path.name}."


@contextlib.contextmanager
def locked(path: Path, error: Callable[[str], AllocgateError]) -> Iterator[None]:
    """Holds the exclusive lock for ``path`` (created next to it) while the block runs."""
    lock = lock_path(path.resolve())
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise error(f"{path}: cannot write: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            break
        # The holder removed this lock file after we opened it: lock the new one.
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


def remove_stale_temps(path: Path) -> None:
    """Deletes temporary files a killed writer left next to ``path``.

    Only call with the lock held: then no live writer owns such a file.
    """
    path = path.resolve()
    prefix = temp_prefix(path)
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            if entry.name.startswith(prefix) and entry.name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
