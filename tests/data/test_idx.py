"""Tests for lenet5.data.idx: round trips, every malformed-file case, and the MNIST pair checks."""

import gzip
import struct

import numpy as np
import pytest

from lenet5.errors import Lenet5Error
from conftest import write_idx
from lenet5.data.idx import load_mnist_pair, read_idx


def _header(code: int, dims) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def _raw(tmp_path, data: bytes, name="x-idx3-ubyte"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _error(path) -> str:
    with pytest.raises(Lenet5Error) as info:
        read_idx(path)
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg
    return msg


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_write_read_round_trip(tmp_path, dtype):
    offset = 0 if dtype == np.uint8 else 7  # negative values too, where the type has them
    arr = (np.arange(24) - offset).astype(dtype).reshape(2, 3, 4)  # (24,) -> (2, 3, 4)
    path = tmp_path / "a.idx"
    write_idx(path, arr)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, arr)
    assert back.flags.writeable


def test_write_idx_layout_is_big_endian(tmp_path):
    path = tmp_path / "s.idx"
    write_idx(path, np.array([1, 258], dtype=np.int16))
    assert path.read_bytes() == bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0, 1, 1, 2])
    assert [p.name for p in tmp_path.iterdir()] == ["s.idx"]  # no temp file left


def test_reads_mnist_style_header(tmp_path):
    path = _raw(tmp_path, _header(0x08, (2, 2)) + bytes([0, 1, 2, 255]))
    np.testing.assert_array_equal(read_idx(path), [[0, 1], [2, 255]])


@pytest.mark.parametrize("data", [b"", b"\x00\x00\x08"])
def test_too_short_for_header(tmp_path, data):
    assert "too short for an IDX header" in _error(_raw(tmp_path, data))


def test_too_short_for_dims(tmp_path):
    msg = _error(_raw(tmp_path, bytes([0, 0, 8, 3]) + b"\x00\x00\x00\x02"))
    assert "too short for its header" in msg and "need 16" in msg


def test_wrong_magic(tmp_path):
    msg = _error(_raw(tmp_path, b"\x01\x02\x08\x01\x00\x00\x00\x01\x05"))
    assert "0x01 0x02" in msg and "0x00 0x00" in msg


def test_unknown_dtype_code(tmp_path):
    msg = _error(_raw(tmp_path, _header(0x0A, (1,)) + b"\x00"))
    assert "unknown IDX data type code 0x0A" in msg and "0x08 ubyte" in msg


def test_zero_dims(tmp_path):
    assert "0 dimensions" in _error(_raw(tmp_path, bytes([0, 0, 8, 0])))


def test_truncated_data(tmp_path):
    msg = _error(_raw(tmp_path, _header(0x08, (3, 28, 28)) + bytes(3 * 784 - 1)))
    assert "truncated" in msg and "2352" in msg and "2351" in msg


def test_trailing_bytes(tmp_path):
    msg = _error(_raw(tmp_path, _header(0x0C, (2,)) + bytes(8 + 5)))
    assert "5 trailing bytes" in msg


def test_huge_dims_do_not_overflow(tmp_path):
    msg = _error(_raw(tmp_path, _header(0x08, (2**32 - 1,) * 3) + bytes(10)))
    assert "truncated" in msg


def test_html_page_under_idx_name(tmp_path):
    page = b"\n  <!DOCTYPE html><html><body>404 Not Found</body></html>"
    assert "looks like an HTML page, not an IDX file" in _error(_raw(tmp_path, page))


def test_gzip_bytes_under_idx_name(tmp_path):
    path = _raw(tmp_path, gzip.compress(_header(0x08, (1,)) + b"\x07"))
    assert "is gzip-compressed;" in _error(path)


def test_missing_file(tmp_path):
    assert "does not exist" in _error(tmp_path / "nope")


def _pair(tmp_path, images, labels):
    ip, lp = tmp_path / "img", tmp_path / "lab"
    write_idx(ip, images)
    write_idx(lp, labels)
    return ip, lp


def test_load_mnist_pair_ok(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28).astype(np.uint8)  # (3, 28, 28)
    labels = np.array([0, 9, 4], dtype=np.uint8)
    got_images, got_labels = load_mnist_pair(*_pair(tmp_path, images, labels))
    assert got_images.shape == (3, 28, 28) and got_images.dtype == np.uint8
    assert got_labels.shape == (3,) and got_labels.dtype == np.uint8
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


@pytest.mark.parametrize(
    "images, labels, match",
    [
        (np.zeros((2, 28, 28), np.int8), np.zeros(2, np.uint8), r"img holds byte data; expected ubyte"),
        (np.zeros((2, 28 * 28), np.uint8), np.zeros(2, np.uint8), r"img has 2 dimensions"),
        (np.zeros((2, 28, 27), np.uint8), np.zeros(2, np.uint8), r"28x27 pixels; expected 28x28"),
        (np.zeros((2, 28, 28), np.uint8), np.zeros(2, np.int32), r"lab holds int data"),
        (np.zeros((2, 28, 28), np.uint8), np.zeros((2, 1), np.uint8), r"lab has 2 dimensions"),
        (np.zeros((3, 28, 28), np.uint8), np.array([1, 10, 255], np.uint8), r"label 10 at index 1"),
        (np.zeros((3, 28, 28), np.uint8), np.zeros(2, np.uint8), r"3 images but .* 2 labels"),
    ],
)
def test_load_mnist_pair_rejects(tmp_path, images, labels, match):
    with pytest.raises(Lenet5Error, match=match):
        load_mnist_pair(*_pair(tmp_path, images, labels))
