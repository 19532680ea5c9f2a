"""The prepared dataset: four ``.npy`` arrays in one folder, written by preprocess, read by train and
evaluate.

``{train,test}_images.npy`` hold float32 ``(N, 1, 32, 32)`` inputs and ``{train,test}_labels.npy``
uint8 ``(N,)`` digits. Each file is written atomically; the reader checks dtypes, shapes, finite
values and labels, and never unpickles.
"""

from pathlib import Path

import numpy as np

from ..errors import Lenet5Error
from .atomic import atomic_path

SPLITS = ("train", "test")


def _name(split, kind):
    return f"{split}_{kind}.npy"


def save_npy(path, arr) -> None:
    """``np.save`` straight into an atomic temp file (no in-memory copy of a 245 MB array)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, arr, allow_pickle=False)


def write_prepared(folder, splits) -> dict:
    """Write ``splits`` (split -> (images float32 ``(N, 1, 32, 32)``, labels ``(N,)``)) into ``folder``;
    returns the counts ``{"train": N, "test": N}``."""
    folder = Path(folder)
    counts = {}
    for split, (images, labels) in splits.items():
        save_npy(folder / _name(split, "images"), images)
        save_npy(folder / _name(split, "labels"), np.ascontiguousarray(labels, dtype=np.uint8))
        counts[split] = int(len(labels))
    return counts


def read_prepared(folder):
    """(train_x, train_y, test_x, test_y) from ``folder``, checked; images ``(N, 1, 32, 32)`` float32,
    labels int64."""
    folder = Path(folder)
    out = []
    for split in SPLITS:
        x, y = (_load_npy(folder / _name(split, kind)) for kind in ("images", "labels"))
        if x.dtype != np.float32 or x.ndim != 4 or x.shape[1:] != (1, 32, 32):
            raise Lenet5Error(f"{folder / _name(split, 'images')}: expected float32 (N, 1, 32, 32), "
                              f"got {x.dtype} {x.shape}")
        if len(x) and not (np.isfinite(x.min()) and np.isfinite(x.max())):  # min/max carry any NaN
            raise Lenet5Error(f"{folder / _name(split, 'images')}: holds NaN or infinite pixel values; "
                              f"expected finite values (rerun the preprocess step)")
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer) or (
                len(y) and (y.min() < 0 or y.max() > 9)):
            raise Lenet5Error(f"{folder / _name(split, 'labels')}: expected {len(x)} integer labels 0-9, "
                              f"got {y.dtype} {y.shape}")
        out += [x, y.astype(np.int64)]
    if len(out[0]) == 0:
        raise Lenet5Error(f"{folder / _name('train', 'images')}: holds no training images")
    return tuple(out)


def _load_npy(path):
    try:
        arr = np.load(path, allow_pickle=False)
        if not isinstance(arr, np.ndarray):  # an .npz archive saved under an .npy name
            arr.close()
            raise Lenet5Error(f"{path}: not a .npy array (an .npz archive?); run the preprocess step again")
        return arr
    except FileNotFoundError:
        raise Lenet5Error(f"{path}: not found; run the preprocess step first "
                          f"(`dvc repro preprocess` or `lenet5 preprocess`)") from None
    except (ValueError, OSError, EOFError) as e:
        raise Lenet5Error(f"{path}: not a readable .npy array ({e})") from None
