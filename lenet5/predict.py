"""Inputs for ``lenet5 predict``: image files prepared as MNIST was, or one digit of an IDX file."""

from pathlib import Path

import numpy as np

from .errors import Lenet5Error
from .idx import read_idx
from .image import load_digit, normalize_28


def inputs_from_files(paths):
    """[(name, x ``(1, 1, 32, 32)``)] for PNG/JPEG files (see ``image.load_digit``)."""
    return [(str(p), load_digit(p)[None]) for p in paths]  # (1,32,32) -> (1,1,32,32)


def inputs_from_idx(path, index):
    """[(name, x ``(1, 1, 32, 32)``)] for image ``index`` of an IDX image file ``(N, 28, 28)`` ubyte."""
    arr = read_idx(Path(path))
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[1:] != (28, 28):
        raise Lenet5Error(f"{path}: expected an IDX file of 28x28 ubyte images, got {arr.dtype} {arr.shape}")
    if not 0 <= index < len(arr):
        raise Lenet5Error(f"--index {index} is out of range: {path} holds {len(arr)} images (0-{len(arr) - 1})")
    return [(f"{path}[{index}]", normalize_28(arr[index])[None])]  # (1,32,32) -> (1,1,32,32)
