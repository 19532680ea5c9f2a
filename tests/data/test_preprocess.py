"""Tests for lenet5.data.preprocess: the paper's normalization, limits, and every bad raw file."""

import gzip
import struct

import numpy as np
import pytest

from lenet5.errors import Lenet5Error
from conftest import write_idx
from lenet5.data.preprocess import normalize, prepare

OUTPUTS = ["manifest.json", "test_images.npy", "test_labels.npy", "train_images.npy", "train_labels.npy"]


def _digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)  # (N, 28, 28)
    images[:, 0, 0], images[:, 27, 27] = 0, 255  # background and full ink in every image
    return images, rng.integers(0, 10, size=n, dtype=np.uint8)  # (N,)


@pytest.fixture
def raw(tmp_path):
    """A raw folder with 5 training and 3 test digits; returns ``(folder, arrays)``."""
    folder = tmp_path / "raw"
    arrays = {"train": _digits(5, 1), "test": _digits(3, 2)}
    for prefix, split in (("train", "train"), ("t10k", "test")):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", arrays[split][0])
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", arrays[split][1])
    return folder, arrays


def test_normalize_values_and_padding():
    images = np.zeros((2, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 27, 27], images[1, 5, 7] = 255, 51, 255
    x = normalize(images)
    assert x.shape == (2, 1, 32, 32) and x.dtype == np.float32
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert np.all(x[:, 0][:, border] == np.float32(-0.1))  # padding is background
    assert x[1, 0, 2, 2] == np.float32(-0.1)  # blank pixel == padding, exactly
    assert x[0, 0, 2, 2] == pytest.approx(1.175, abs=1e-6)  # full ink, top-left pixel lands at (2, 2)
    assert x[0, 0, 29, 29] == pytest.approx(-0.1 + 1.275 * 51 / 255, abs=1e-6)
    assert x[1, 0, 7, 9] == pytest.approx(1.175, abs=1e-6)  # (5, 7) -> (7, 9)


def test_normalize_matches_float64_reference():
    images, _ = _digits(4, 3)
    ref = np.pad(-0.1 + 1.275 * images.astype(np.float64) / 255, ((0, 0), (2, 2), (2, 2)),
                 constant_values=-0.1)[:, None]  # (4, 32, 32) -> (4, 1, 32, 32)
    np.testing.assert_allclose(normalize(images), ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("bad", [np.zeros((2, 28, 28), np.float32), np.zeros((28, 28), np.uint8),
                                 np.zeros((2, 32, 32), np.uint8)])
def test_normalize_rejects(bad):
    with pytest.raises(Lenet5Error, match="expected uint8 of shape"):
        normalize(bad)


def test_prepare_writes_four_arrays(tmp_path, raw):
    folder, arrays = raw
    out = tmp_path / "out"
    assert prepare(folder, out) == {"train": 5, "test": 3}
    assert sorted(p.name for p in out.iterdir()) == OUTPUTS  # and no temp files
    for split, (images, labels) in arrays.items():
        x = np.load(out / f"{split}_images.npy", allow_pickle=False)
        y = np.load(out / f"{split}_labels.npy", allow_pickle=False)
        assert x.dtype == np.float32 and x.shape == (len(images), 1, 32, 32)
        assert y.dtype == np.uint8 and y.shape == (len(images),)
        np.testing.assert_array_equal(x, normalize(images))
        np.testing.assert_array_equal(y, labels)


def test_limits_keep_the_first_digits(tmp_path, raw):
    folder, arrays = raw
    out = tmp_path / "out"
    assert prepare(folder, out, train_limit=2, test_limit=99) == {"train": 2, "test": 3}
    np.testing.assert_array_equal(np.load(out / "train_labels.npy"), arrays["train"][1][:2])
    np.testing.assert_array_equal(np.load(out / "train_images.npy"), normalize(arrays["train"][0][:2]))
    assert prepare(folder, out, train_limit=np.int64(5), test_limit=1) == {"train": 5, "test": 1}


def _hdr(code, dims):
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


# file to spoil -> its new bytes (or an array for write_idx), and what the error must say
BAD = {
    "truncated": ("train-images-idx3-ubyte", _hdr(8, (5, 28, 28)) + bytes(5 * 784 - 3), "is truncated"),
    "trailing": ("t10k-labels-idx1-ubyte", _hdr(8, (3,)) + bytes(4), "1 trailing bytes"),
    "header": ("t10k-images-idx3-ubyte", b"\x00\x00", "too short for an IDX header"),
    "magic": ("train-labels-idx1-ubyte", b"\x08\x01\x08\x01" + bytes(9), "expected an IDX file starting"),
    "dtype code": ("train-labels-idx1-ubyte", _hdr(0x07, (5,)) + bytes(5), "unknown IDX data type code"),
    "not ubyte": ("train-images-idx3-ubyte", np.zeros((5, 28, 28), np.int16), "holds short data"),
    "image size": ("t10k-images-idx3-ubyte", np.zeros((3, 32, 32), np.uint8), "32x32 pixels"),
    "label 10": ("train-labels-idx1-ubyte", np.array([1, 2, 3, 10, 4], np.uint8), "label 10 at index 3"),
    "count": ("t10k-labels-idx1-ubyte", np.zeros(4, np.uint8), "3 images but"),
    "html": ("train-images-idx3-ubyte", b"<!DOCTYPE html>\n<html>403</html>", "looks like an HTML page"),
    "gzip": ("t10k-labels-idx1-ubyte", gzip.compress(_hdr(8, (3,)) + bytes(3)), "is gzip-compressed;"),
    "missing": ("train-labels-idx1-ubyte", None, "does not exist"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_raw_file_fails_and_leaves_out_dir_alone(tmp_path, raw, case):
    folder, _ = raw
    out = tmp_path / "out"
    prepare(folder, out, train_limit=1)  # an earlier, good run
    (out / "notes.txt").write_text("keep me")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    name, content, expected = BAD[case]
    target = folder / name
    if content is None:
        target.unlink()
    elif isinstance(content, bytes):
        target.write_bytes(content)
    else:
        write_idx(target, content)
    with pytest.raises(Lenet5Error) as info:
        prepare(folder, out)
    msg = str(info.value)
    assert expected in msg and str(target) in msg and "\n" not in msg
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # unchanged, no temp files


def test_failed_write_leaves_no_partial_file(tmp_path, raw, monkeypatch):
    folder, _ = raw
    out = tmp_path / "out"
    out.mkdir()
    (out / "train_labels.npy").write_bytes(b"old")

    def full_disk(f, arr, allow_pickle):
        f.write(b"\x93NUMPY half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", full_disk)
    with pytest.raises(Lenet5Error, match="cannot write .*train_images.npy: No space left on device"):
        prepare(folder, out)
    assert [p.name for p in out.iterdir()] == ["train_labels.npy"]
    assert (out / "train_labels.npy").read_bytes() == b"old"


def test_out_dir_is_a_file(tmp_path, raw):
    (tmp_path / "out").write_text("x")
    with pytest.raises(Lenet5Error, match="cannot write"):
        prepare(raw[0], tmp_path / "out")
