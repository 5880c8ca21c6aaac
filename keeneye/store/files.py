"""Private files: the data directory's folders are 0700 and its files 0600, whatever the umask.

The data directory holds face vectors (the database, the index files), the audit trail, spooled
identifications on their way to a sink, JSONL notification files and the key that decrypts stored
secrets: nothing another local user should read. A process's umask (022 on most systems) would make
them 0644 / 0755. So every folder and file keeneye makes there is created with the private mode
(``mkdir`` / ``os.open`` with 0700 / 0600, which a umask can only narrow) and set to exactly that
mode if it had more (an existing file or folder of an older keeneye, or a umask that took the
owner's bits). A file or folder another user owns is left as it is (chmod would fail anyway).

SQLite creates ``-wal`` and ``-shm`` itself, with the mode of the database file: :func:`private_sqlite`
creates the database file first, 0600, so they follow (and tightens ones an older keeneye left).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import IO, Any

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_FLAGS = {
    "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    "x": os.O_WRONLY | os.O_CREAT | os.O_EXCL,
}


def private_dir(path: Path) -> Path:
    """``path`` as a folder with mode 0700; the missing folders above it are made 0700 too (folders
    that exist are left as they are); ``path``."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        folder.mkdir(mode=PRIVATE_DIR, exist_ok=True)
    _restrict(path, PRIVATE_DIR)
    return path


def private_open(path: Path, mode: str = "wb", **kwargs: Any) -> IO[Any]:
    """``open(path, mode)`` for writing (``w``, ``a`` or ``x``, text or binary), the file 0600.

    A symbolic link at ``path`` is refused (ELOOP), as the server never means to write through one."""
    flags = _FLAGS.get(mode[:1])
    if flags is None or "+" in mode:
        raise ValueError(f"private_open writes: mode {mode!r} must start with w, a or x")
    fd = os.open(path, flags | _NOFOLLOW, PRIVATE_FILE)
    try:
        _restrict_fd(fd, PRIVATE_FILE)
        return os.fdopen(fd, mode, **kwargs)
    except BaseException:
        os.close(fd)
        raise


def private_fd(path: Path, flags: int) -> int:
    """``os.open(path, flags)`` with the file 0600 (created so, or narrowed); the caller closes it."""
    fd = os.open(path, flags | _NOFOLLOW, PRIVATE_FILE)
    try:
        _restrict_fd(fd, PRIVATE_FILE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def restrict_file(path: Path) -> None:
    """Narrow an existing file (written by code that takes no mode, e.g. a Parquet writer) to 0600."""
    _restrict(path, PRIVATE_FILE)


def private_sqlite(path: Path) -> None:
    """Before SQLite opens ``path``: the database file exists, 0600 (an empty file is an empty
    database), so the ``-wal``, ``-shm`` and ``-journal`` files SQLite creates get its mode; those an
    older keeneye left are narrowed too."""
    os.close(private_fd(path, os.O_RDWR | os.O_CREAT))
    for suffix in ("-wal", "-shm", "-journal"):
        companion = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):  # SQLite makes it when needed, with the right mode
            _restrict(companion, PRIVATE_FILE)


def _restrict(path: Path, mode: int) -> None:
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid():
        return  # not ours to change (a link is followed to what it names, which keeneye did not make)
    if stat.S_IMODE(st.st_mode) != mode:
        os.chmod(path, mode)


def _restrict_fd(fd: int, mode: int) -> None:
    st = os.fstat(fd)
    if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != mode:
        os.fchmod(fd, mode)
