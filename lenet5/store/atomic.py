"""Atomic writes: a temp file in the destination folder, fsync, then ``os.replace``.

A crash or a full disk at any moment leaves either the old file or the new one, never half of one;
the temp file is removed on failure. OS errors become a one-line ``Lenet5Error`` naming the path.
"""

import contextlib
import functools
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import Lenet5Error



@functools.lru_cache(maxsize=1)
def _umask():
    """The process's umask (read once, when the first file is written: reading it means setting it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temp path beside ``path``; on success it replaces ``path`` in one step."""
    path = Path(path)
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


def save_npz(path, arrays: dict) -> None:
    """Save a dict of arrays as an uncompressed ``.npz`` atomically (no pickle)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
