"""IDX files, the format of the MNIST database (http://yann.lecun.com/exdb/mnist/).

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype code> <ndim>``, then ``ndim`` big-endian
uint32 dimension sizes, then the data in C order, big-endian. The files read here are the
decompressed ones (``train-images-idx3-ubyte``, not ``...-ubyte.gz``); ``fetch.py`` stores
them that way.

Every defect (too short, wrong magic, unknown type, a size that disagrees with the dimensions, an
HTML error page or gzip bytes saved under an IDX name) raises a one-line ``Lenet5Error`` that names
the file and what was expected.
"""

import math
import os
import struct
from pathlib import Path

import numpy as np

from ..errors import Lenet5Error

# IDX dtype code -> (big-endian numpy dtype, name used in the format's documentation)
IDX_DTYPES = {
    0x08: (np.dtype(">u1"), "ubyte"),
    0x09: (np.dtype(">i1"), "byte"),
    0x0B: (np.dtype(">i2"), "short"),
    0x0C: (np.dtype(">i4"), "int"),
    0x0D: (np.dtype(">f4"), "float"),
    0x0E: (np.dtype(">f8"), "double"),
}
_KNOWN_CODES = ", ".join(f"0x{code:02X} {name}" for code, (_, name) in IDX_DTYPES.items())

# the four MNIST files, as stored (decompressed) by fetch.py: split -> (images, labels)
MNIST_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_SIDE = 28
MNIST_CLASSES = 10


def _sniff(path, head: bytes) -> None:
    """Reject the two common impostors: an HTML page and a still-compressed file."""
    if head[:2] == b"\x1f\x8b":
        raise Lenet5Error(
            f"{path} is gzip-compressed; expected a decompressed IDX file "
            f"(gunzip it, or run `lenet5 fetch`, which stores IDX files decompressed)"
        )
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<") and any(tag in text for tag in (b"<!doctype", b"<html", b"<head", b"<body")):
        raise Lenet5Error(
            f"{path} looks like an HTML page, not an IDX file "
            f"(a mirror probably served an error page; delete it and fetch again)"
        )


def read_idx(path) -> np.ndarray:
    """Read a raw (decompressed) IDX file.

    Parameters
    ----------
    path : str or Path
        The IDX file.

    Returns
    -------
    ndarray of shape ``(d0, d1, ...)``
        The data in native byte order, dtype one of uint8, int8, int16, int32, float32, float64.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(512)
            _sniff(path, head)
            if size < 4:
                raise Lenet5Error(
                    f"{path} is too short for an IDX header ({size} bytes; expected at least 4)"
                )
            if head[0] != 0 or head[1] != 0:
                raise Lenet5Error(
                    f"{path} has magic bytes 0x{head[0]:02X} 0x{head[1]:02X}; "
                    f"expected an IDX file starting with 0x00 0x00"
                )
            code, ndim = head[2], head[3]
            if code not in IDX_DTYPES:
                raise Lenet5Error(
                    f"{path} has unknown IDX data type code 0x{code:02X}; expected one of {_KNOWN_CODES}"
                )
            if ndim == 0:
                raise Lenet5Error(f"{path} declares 0 dimensions; expected at least 1")
            header = 4 + 4 * ndim
            if size < header:
                raise Lenet5Error(
                    f"{path} is too short for its header ({size} bytes; "
                    f"{ndim} dimensions need {header})"
                )
            f.seek(4)
            dims = struct.unpack(f">{ndim}I", f.read(4 * ndim))
            dtype, name = IDX_DTYPES[code]
            count = math.prod(dims)  # Python int: no overflow on absurd dims
            want, have = count * dtype.itemsize, size - header
            if have != want:
                what = "truncated" if have < want else f"followed by {have - want} trailing bytes"
                raise Lenet5Error(
                    f"{path} is {what}: dims {dims} of {name} need {want} data bytes, "
                    f"the file holds {have}"
                )
            data = np.fromfile(f, dtype=dtype, count=count)
    except FileNotFoundError as e:
        raise Lenet5Error(f"{path} does not exist; expected an IDX file") from e
    except OSError as e:
        raise Lenet5Error(f"cannot read {path}: {e.strerror or e}") from e
    if data.size != count:  # the file shrank while we read it
        raise Lenet5Error(f"{path} is truncated: expected {count} {name} values, read {data.size}")
    return data.astype(dtype.newbyteorder("="), copy=False).reshape(dims)  # (d0, d1, ...)


def _check(path, arr: np.ndarray, ndim: int, what: str) -> None:
    """One-line error unless ``arr`` is ubyte data with ``ndim`` dimensions."""
    if arr.dtype != np.uint8:
        name = next(n for dt, n in IDX_DTYPES.values() if dt.newbyteorder("=") == arr.dtype)
        raise Lenet5Error(f"{path} holds {name} data; expected ubyte (0x08) {what}")
    if arr.ndim != ndim:
        raise Lenet5Error(f"{path} has {arr.ndim} dimensions {arr.shape}; expected {ndim} ({what})")


def load_mnist_pair(images_path, labels_path) -> tuple[np.ndarray, np.ndarray]:
    """Read and check one MNIST split (images and their labels).

    Parameters
    ----------
    images_path, labels_path : str or Path
        Raw IDX files, e.g. ``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte``.

    Returns
    -------
    images : ndarray of shape ``(N, 28, 28)``, uint8
        0 is background, 255 full ink.
    labels : ndarray of shape ``(N,)``, uint8
        Digit classes 0..9.
    """
    images = read_idx(images_path)
    _check(images_path, images, 3, "images (N, 28, 28)")
    if images.shape[1:] != (MNIST_SIDE, MNIST_SIDE):
        raise Lenet5Error(
            f"{images_path} holds images of {images.shape[1]}x{images.shape[2]} pixels; "
            f"expected {MNIST_SIDE}x{MNIST_SIDE}"
        )
    labels = read_idx(labels_path)
    _check(labels_path, labels, 1, "labels (N,)")
    bad = np.flatnonzero(labels >= MNIST_CLASSES)
    if bad.size:
        i = int(bad[0])
        raise Lenet5Error(
            f"{labels_path} has label {int(labels[i])} at index {i}; "
            f"expected digits 0..{MNIST_CLASSES - 1}"
        )
    if len(images) != len(labels):
        raise Lenet5Error(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels; "
            f"expected the same count"
        )
    return images, labels
