"""``lenet5 predict``: recognize digits in image files (prepared as MNIST was) or in an IDX file."""

import json
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from ..data.idx import read_idx
from ..data.image import load_digit
from ..data.preprocess import normalize
from ..errors import Lenet5Error
from ..pipeline.steps import DEFAULTS


def shown(path) -> str:
    """A file name as printable text: bytes that are not UTF-8 (kept by Python as surrogates) shown as
    ``\\xNN``, so that printing it never fails."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def inputs_from_files(paths):
    """[(name, x ``(1, 1, 32, 32)``)] for PNG/JPEG files (see ``data/image.load_digit``)."""
    return [(shown(p), load_digit(p)[None]) for p in paths]  # (1,32,32) -> (1,1,32,32)


def inputs_from_idx(path, index):
    """[(name, x ``(1, 1, 32, 32)``)] for image ``index`` of an IDX image file ``(N, 28, 28)`` ubyte."""
    arr = read_idx(Path(path))
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[1:] != (28, 28):
        raise Lenet5Error(f"{path}: expected an IDX file of 28x28 ubyte images, got {arr.dtype} {arr.shape}")
    if not 0 <= index < len(arr):
        raise Lenet5Error(f"--index {index} is out of range: {path} holds {len(arr)} images (0-{len(arr) - 1})")
    return [(f"{shown(path)}[{index}]", normalize(arr[index:index + 1]))]  # (1,28,28) -> (1,1,32,32)


def predict(images: Annotated[Optional[list[Path]], typer.Argument(help="PNG/JPEG files, one digit each.")] = None,
            model: Annotated[Path, typer.Option(help="Trained weights (.npz).")] = DEFAULTS["model"],
            idx: Annotated[Optional[Path], typer.Option(help="An IDX image file (e.g. data/raw/t10k-images-idx3-ubyte).")] = None,
            index: Annotated[int, typer.Option(help="Which image of --idx.", min=0)] = 0,
            as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False):
    """Recognize digits in image files (prepared as MNIST was) or in an IDX file; print the RBF distances."""
    from ..model import LeNet5

    if not images and idx is None:
        raise Lenet5Error("predict: give one or more image files, or --idx FILE --index N")
    net = LeNet5.load(model)
    named = inputs_from_idx(idx, index) if idx is not None else []
    named += inputs_from_files(images or [])
    for name, x in named:
        y = net.forward(x)[0]
        digit = int(y.argmin())
        if as_json:
            print(json.dumps({"input": name, "digit": digit, "distances": [round(float(v), 4) for v in y]}))
        else:
            dist = "  ".join(f"{d}:{v:.2f}" for d, v in enumerate(y))
            print(f"{name}: {digit}    RBF distances  {dist}")
