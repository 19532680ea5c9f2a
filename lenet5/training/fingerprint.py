"""Fingerprints of what shapes the weights: the parameters, the data and the training code.

A checkpoint stores the fingerprint of the run that wrote it and is resumed only by a run with the
same one (the same BLAS kernel too). ``TRAINING_CODE`` names the code that decides the weights: it is the list of the train
stage's code deps in ``dvc.yaml`` (a test holds the two together), so DVC and the checkpoint agree
on when code has changed. ``epochs`` is left out on purpose: the schedule does not depend on it, so
a finished 20-epoch run can be extended to 25 and still match a fresh one.
"""

import dataclasses
import hashlib
import json
import numbers
from pathlib import Path

import numpy as np

from ..cpu import blas
from ..parallel.pool import resolve_threads

# Inside the lenet5 package: files and folders (every file below them).
TRAINING_CODE = ("__init__.py", "errors.py", "cpu.py", "model.py", "nn", "parallel", "store", "training", "pipeline")
PACKAGE = Path(__file__).resolve().parents[1]


def code_files():
    """The files of ``TRAINING_CODE`` (as DVC sees them: no ``__pycache__``), in a fixed order,
    relative to the package."""
    files = []
    for entry in TRAINING_CODE:
        path = PACKAGE / entry
        if path.is_dir():
            files += sorted(f for f in path.rglob("*") if f.is_file() and "__pycache__" not in f.parts
                            and f.suffix != ".pyc")
        else:
            files.append(path)
    return [f.relative_to(PACKAGE).as_posix() for f in files]


def code_digest():
    """A short hash of the training code: each file's path and bytes."""
    h = hashlib.blake2b(digest_size=16)
    for rel in code_files():
        h.update(rel.encode() + b"\0")
        h.update((PACKAGE / rel).read_bytes())
    return h.hexdigest()


def data_digest(*arrays):
    """A short hash of the training/test arrays (shapes, dtypes and bytes)."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.data)
    return h.hexdigest()


def _canonical(v):
    """Plain JSON data with string keys and integral floats written as ints."""
    if dataclasses.is_dataclass(v):
        v = dataclasses.asdict(v)
    if isinstance(v, dict):
        return {str(k): _canonical(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_canonical(x) for x in v]
    if v is None or isinstance(v, (str, bool, np.bool_)):
        return v if v is None or isinstance(v, str) else bool(v)
    if isinstance(v, numbers.Real):  # ints too; 50.0 and 50 hash alike
        return int(v) if isinstance(v, numbers.Integral) or float(v).is_integer() else float(v)
    raise TypeError(f"cannot fingerprint a value of type {type(v).__name__}: {repr(v)[:60]}")


def params_fingerprint(block) -> str:
    """SHA-256 hex digest of a parameter block (a dict or a dataclass) as canonical JSON."""
    text = json.dumps(_canonical(block), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def blas_kernel():
    """The matrix-product kernel OpenBLAS runs in this process (``lenet5/cpu.py`` pins it): another
    kernel sums in another order, so a checkpoint of one is not resumed under the other."""
    return blas().get("architecture")


def training_fingerprint(lr_scale, train, distort, digest):
    """Fingerprint of params (``train`` and ``distort`` blocks, ``lr_scale``), data, code and BLAS kernel."""
    t = dataclasses.asdict(train)
    t.pop("epochs")
    t["threads"] = resolve_threads(train.threads)  # chunk sums depend on it, so bitwise results do too
    return params_fingerprint({"lr_scale": lr_scale, "train": t, "distort": dataclasses.asdict(distort),
                               "data": digest, "code": code_digest(), "blas": blas_kernel()})
