"""Atomic writes: a temp file in the destination folder, fsync, then ``os.replace``.

A crash or a full disk at any moment leaves either the old file or the new one, never half of one;
the temp file is removed on failure. OS errors become a one-line ``Lenet5Error`` naming the path.
Only a regular file (or a symbolic link, which is replaced, not followed) or a missing path is
replaced: a FIFO, a device or a folder given as an output is refused before anything is written.
Temp files are named ``.<name>.<8 characters>.tmp``; ``remove_stale_temps_in`` deletes those a
killed run left, and every step that writes into a folder calls it first.
"""

import contextlib
import functools
import json
import os
import re
import stat
import tempfile
from pathlib import Path

from ..errors import Lenet5Error



@functools.lru_cache(maxsize=1)
def _umask():
    """The process's umask (read once, when the first file is written: reading it means setting it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_TEMP = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")  # what mkstemp(prefix=".<name>.", suffix=".tmp") makes


def remove_stale_temps_in(folder) -> None:
    """Delete the temp files (``.<name>.XXXXXXXX.tmp``) that a killed run left in ``folder``."""
    folder = Path(folder)
    if folder.is_dir():
        for tmp in folder.iterdir():
            if _TEMP.fullmatch(tmp.name) and tmp.is_file() and not tmp.is_symlink():
                tmp.unlink(missing_ok=True)


def check_replaceable(path) -> None:
    """Refuse to replace anything but a regular file, a symbolic link or a missing path."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise Lenet5Error(f"cannot write {path}: {e.strerror or e}") from e
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a device, FIFO or socket)"
        raise Lenet5Error(f"cannot write {path}: it is {kind}; expected a regular file or a new path")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temp path beside ``path``; on success it replaces ``path`` in one step."""
    path = Path(path)
    check_replaceable(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    except OSError as e:
        raise Lenet5Error(f"cannot write {path}: {e.strerror or e}") from e
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise Lenet5Error(f"cannot write {path}: {e.strerror or e}") from e
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON (with a final newline) atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")

