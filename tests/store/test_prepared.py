"""Tests of lenet5.store.prepared: headers checked before allocation, and sets read whole or not at all."""

import io
import time

import numpy as np
import pytest

from lenet5.errors import Lenet5Error
from lenet5.store import prepared
from lenet5.store.prepared import read_prepared, write_prepared


def splits(n_train=6, n_test=4, seed=0):
    rng = np.random.default_rng(seed)
    return {s: (rng.uniform(-0.1, 1.175, size=(n, 1, 32, 32)).astype(np.float32),  # (N, 1, 32, 32)
                rng.integers(0, 10, size=n).astype(np.uint8)) for s, n in (("train", n_train), ("test", n_test))}


def error_of(folder):
    t0 = time.perf_counter()
    with pytest.raises(Lenet5Error) as info:
        read_prepared(folder)
    assert time.perf_counter() - t0 < 1.0
    msg = str(info.value)
    assert "\n" not in msg and str(folder) in msg
    return msg


def test_round_trip(tmp_path):
    data = splits()
    assert write_prepared(tmp_path, data) == {"train": 6, "test": 4}
    tx, ty, vx, vy = read_prepared(tmp_path)
    assert np.array_equal(tx, data["train"][0]) and np.array_equal(vy, data["test"][1]) and ty.dtype == np.int64


def test_a_half_written_set_is_refused(tmp_path, monkeypatch):
    write_prepared(tmp_path, splits(seed=0))
    calls = []
    real = prepared.save_npy

    def failing(path, arr):  # the disk fills up at the third array
        calls.append(path)
        if len(calls) == 3:
            raise Lenet5Error(f"cannot write {path}: No space left on device")
        real(path, arr)

    monkeypatch.setattr(prepared, "save_npy", failing)
    with pytest.raises(Lenet5Error):
        write_prepared(tmp_path, splits(seed=1))  # new train arrays beside old test arrays
    assert "holds no complete prepared set" in error_of(tmp_path)


def test_new_train_arrays_beside_old_test_arrays_are_refused(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    write_prepared(old, splits(seed=0))
    write_prepared(new, splits(seed=1))
    (old / "train_images.npy").write_bytes((new / "train_images.npy").read_bytes())  # same size, new bytes
    assert "differs from the manifest's SHA-256" in error_of(old)


def test_a_header_that_declares_more_than_the_file_holds(tmp_path):
    write_prepared(tmp_path, splits())
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False,
                                               "shape": (10**11, 1, 32, 32)})
    blob = buf.getvalue() + bytes(4096)
    _reseal(tmp_path, "train_images.npy", blob)
    assert "the header declares" in error_of(tmp_path)


@pytest.mark.parametrize("name, arr, words", [
    ("train_images.npy", np.zeros((6, 1, 28, 28), np.float32), "expected float32 (N, 1, 32, 32)"),
    ("train_images.npy", np.zeros((6, 1, 32, 32), np.float64), "expected float32 (N, 1, 32, 32)"),
    ("test_labels.npy", np.zeros((4, 2), np.uint8), "expected integer (N,)"),
    ("test_labels.npy", np.array(["a"] * 4), "expected integer (N,)"),
])
def test_wrong_dtype_or_shape_is_refused_from_the_header(tmp_path, name, arr, words):
    write_prepared(tmp_path, splits())
    buf = io.BytesIO()
    np.save(buf, arr)
    _reseal(tmp_path, name, buf.getvalue())
    assert words in error_of(tmp_path)


def _reseal(folder, name, blob):
    """Replace ``name`` by ``blob`` and update the manifest as a writer would, so the header check is reached."""
    import hashlib
    import json

    (folder / name).write_bytes(blob)
    m = json.loads((folder / "manifest.json").read_text())
    m["files"][name] = {"bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
    (folder / "manifest.json").write_text(json.dumps(m))


def test_a_damaged_manifest_is_one_line(tmp_path):
    write_prepared(tmp_path, splits())
    (tmp_path / "manifest.json").write_text("[" * 100_000)
    assert "not a prepared-set manifest" in error_of(tmp_path)
