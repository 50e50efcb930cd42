"""Files the cloud creates hold secrets (sealed device keys in the database,
the server secret, CA keys): they are made readable by their owner only,
whatever the umask. A folder the cloud creates for them is 0700; a file is
created 0600 and never widened. SQLite gives its -wal and -shm files the
mode of the database file, so a 0600 database keeps them 0600 too."""

from __future__ import annotations

import os

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: str) -> None:
    """Make `path`'s folders that don't exist yet, 0700 (existing ones are left alone)."""
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        private_dir(os.path.dirname(path))
        try:
            os.mkdir(path, DIR_MODE)
        except FileExistsError:
            pass  # made meanwhile by another process


def create_private(path: str, exclusive: bool = True) -> int:
    """Open `path` for writing, created 0600 in a 0700 folder; `exclusive`
    refuses an existing file. Returns the descriptor."""
    private_dir(os.path.dirname(os.path.abspath(path)))
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else 0)
    return os.open(path, flags, FILE_MODE)


def touch_private(path: str) -> None:
    """Create `path` empty and 0600 unless it exists (what SQLite then opens)."""
    os.close(create_private(path, exclusive=False))


def write_private(path: str, text: str) -> None:
    """Write `text` to `path`, readable by its owner only: created 0600, and
    an existing file (say, a wider one left by an older tool) truncated and
    narrowed to 0600 before anything is written. The folder is not changed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w", closefd=False) as fh:
            fh.write(text)
    finally:
        os.close(fd)
