"""The prepared dataset: four ``.npy`` arrays and a manifest in one folder, written by preprocess,
read by train and evaluate.

``{train,test}_images.npy`` hold float32 ``(N, 1, 32, 32)`` inputs and ``{train,test}_labels.npy``
uint8 ``(N,)`` digits. The writer removes ``manifest.json`` first, writes each array atomically,
and writes the manifest (each file's size and SHA-256) last; the reader checks every file against
it, so a run stopped half-way (new training arrays beside old test arrays) is refused, never mixed.
Each header is checked against the expected dtype and shape and the file's size before anything is
allocated; values and labels are checked after; nothing is unpickled.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..errors import Lenet5Error
from .atomic import atomic_path, write_json
from .npyheader import check_header

SPLITS = ("train", "test")
MANIFEST = "manifest.json"
FORMAT = "lenet5-prepared-1"
MAX_IMAGES = 10**6  # per split: MNIST has 60,000 (4 GB of float32 at the cap)
_CHUNK = 1 << 24


def _name(split, kind):
    return f"{split}_{kind}.npy"


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def save_npy(path, arr) -> None:
    """``np.save`` straight into an atomic temp file (no in-memory copy of a 245 MB array)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, arr, allow_pickle=False)


def write_prepared(folder, splits) -> dict:
    """Write ``splits`` (split -> (images float32 ``(N, 1, 32, 32)``, labels ``(N,)``)) into ``folder``,
    the manifest last; returns the counts ``{"train": N, "test": N}``."""
    folder = Path(folder)
    try:
        (folder / MANIFEST).unlink(missing_ok=True)  # until the new set is complete, the folder is no set
    except OSError as e:
        raise Lenet5Error(f"cannot write {folder / MANIFEST}: {e.strerror or e}") from e
    counts, files = {}, {}
    for split, (images, labels) in splits.items():
        for kind, arr in (("images", images), ("labels", np.ascontiguousarray(labels, dtype=np.uint8))):
            save_npy(folder / _name(split, kind), arr)
            path = folder / _name(split, kind)
            files[path.name] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
        counts[split] = int(len(labels))
    write_json(folder / MANIFEST, {"format": FORMAT, "files": files})
    return counts


def _manifest(folder) -> dict:
    """name -> {"bytes", "sha256"} from the folder's manifest, checked."""
    path = folder / MANIFEST
    hint = "; run the preprocess step again (`dvc repro preprocess` or `lenet5 preprocess`)"
    try:
        with open(path, "rb") as f:
            raw = f.read(65537)
    except FileNotFoundError:
        raise Lenet5Error(f"{path}: not found: {folder} holds no complete prepared set{hint}") from None
    try:
        if len(raw) > 65536:
            raise ValueError("larger than 64 kB")
        d = json.loads(raw.decode("utf-8"))
        files = d["files"]
        ok = d["format"] == FORMAT and all(isinstance(files[_name(s, k)]["bytes"], int)
                                           and isinstance(files[_name(s, k)]["sha256"], str)
                                           for s in SPLITS for k in ("images", "labels"))
    except (ValueError, KeyError, TypeError, RecursionError) as e:
        raise Lenet5Error(f"{path}: not a prepared-set manifest ({type(e).__name__}){hint}") from None
    if not ok:
        raise Lenet5Error(f"{path}: not a {FORMAT} manifest{hint}")
    return files


def read_prepared(folder):
    """(train_x, train_y, test_x, test_y) from ``folder``, checked; images ``(N, 1, 32, 32)`` float32,
    labels int64."""
    folder = Path(folder)
    files = _manifest(folder)
    out = []
    for split in SPLITS:
        x = _load_npy(folder / _name(split, "images"), files, (1, 32, 32), "float32", lambda dt: dt == np.float32)
        y = _load_npy(folder / _name(split, "labels"), files, (), "integer", lambda dt: dt.kind in "iu")
        if len(x) and not (np.isfinite(x.min()) and np.isfinite(x.max())):  # min/max carry any NaN
            raise Lenet5Error(f"{folder / _name(split, 'images')}: holds NaN or infinite pixel values; "
                              f"expected finite values (rerun the preprocess step)")
        if len(y) != len(x) or (len(y) and (y.min() < 0 or y.max() > 9)):
            raise Lenet5Error(f"{folder / _name(split, 'labels')}: expected {len(x)} integer labels 0-9, "
                              f"got {y.dtype} {y.shape}")
        out += [x, y.astype(np.int64)]
    if len(out[0]) == 0:
        raise Lenet5Error(f"{folder / _name('train', 'images')}: holds no training images")
    return tuple(out)


def _load_npy(path, files, item_shape, want, dtype_ok):
    """The array in ``path`` (shape ``(N, *item_shape)``), its header, size and SHA-256 checked first."""
    expected = files[path.name]
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size != expected["bytes"]:
                raise Lenet5Error(f"{path}: {size} bytes, the manifest says {expected['bytes']}; the prepared "
                                  f"set is mixed or damaged (run the preprocess step again)")
            dtype, shape, order = check_header(f, size, str(path))
            if (not dtype_ok(dtype) or order != "C" or len(shape) != 1 + len(item_shape)
                    or tuple(shape[1:]) != item_shape or shape[0] > MAX_IMAGES):
                raise Lenet5Error(f"{path}: holds {dtype} {shape}; expected {want} {('N',) + item_shape} "
                                  f"with N <= {MAX_IMAGES}".replace("'N'", "N"))
            h = hashlib.sha256()
            header = f.tell()
            f.seek(0)
            h.update(f.read(header))
            arr = np.empty(shape, dtype=dtype)
            view = memoryview(arr.reshape(-1).view(np.uint8))  # (N, ...) -> flat bytes of the same memory
            got = 0
            while got < len(view):
                n = f.readinto(view[got:])
                if not n:
                    raise Lenet5Error(f"{path}: ended after {header + got} bytes of {size}")
                got += n
            h.update(view)
    except FileNotFoundError:
        raise Lenet5Error(f"{path}: not found; run the preprocess step first "
                          f"(`dvc repro preprocess` or `lenet5 preprocess`)") from None
    except IsADirectoryError:
        raise Lenet5Error(f"{path}: is a folder, expected a .npy array") from None
    if h.hexdigest() != expected["sha256"]:
        raise Lenet5Error(f"{path}: content differs from the manifest's SHA-256; the prepared set is mixed or "
                          f"changed (run the preprocess step again)")
    return arr
