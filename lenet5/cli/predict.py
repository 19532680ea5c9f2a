"""``lenet5 predict``: recognize digits in image files and folders (prepared as MNIST was) or in an IDX file.

Every input gets its own line on stdout, in order: the digit and its confidence (the margin between
the two smallest RBF penalties), or ``unsure`` when that margin is below the rejection threshold
(``evaluation/rejection.py``). An input that cannot be read gets its own ``error: ...`` line on
stderr and the others are still answered; the exit status is 1 when any input failed. ``--json``
prints one object per input on stdout instead, with an ``error`` key for a failed one.
"""

import json
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from ..data.idx import read_idx
from ..data.image import load_digit
from ..data.preprocess import normalize
from ..errors import Lenet5Error, describe, echo
from ..evaluation.metrics import margins
from ..evaluation.rejection import DEFAULT_THRESHOLD, read_threshold
from ..pipeline.steps import DEFAULTS


def shown(path) -> str:
    """A file name as printable text: bytes that are not UTF-8 (kept by Python as surrogates) shown as
    ``\\xNN``, so that printing it never fails."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".tif", ".tiff", ".bmp", ".webp")


def expand(paths):
    """Files and folders -> [(path, error or None)]: a folder gives its image files, sorted by name."""
    out = []
    for p in map(Path, paths):
        if not p.is_dir():
            out.append((p, None))
            continue
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        if not files:
            out.append((p, f"{p}: a folder with no image files (expected {', '.join(IMAGE_SUFFIXES)})"))
        out += [(f, None) for f in files]
    return out


def labels_beside(path):
    """The labels ``(N,)`` of an IDX image file when its labels file sits beside it
    (``t10k-images-idx3-ubyte`` -> ``t10k-labels-idx1-ubyte``), else None."""
    path = Path(path)
    if "images-idx3" not in path.name:
        return None
    beside = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
    if not beside.is_file():
        return None
    labels = read_idx(beside)
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise Lenet5Error(f"{beside}: expected an IDX file of ubyte labels (N,), got {labels.dtype} {labels.shape}")
    return labels


def input_from_idx(path, index):
    """(x ``(1, 1, 32, 32)``, true label or None) for image ``index`` of an IDX file ``(N, 28, 28)`` ubyte."""
    arr = read_idx(Path(path))
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[1:] != (28, 28):
        raise Lenet5Error(f"{path}: expected an IDX file of 28x28 ubyte images, got {arr.dtype} {arr.shape}")
    if not 0 <= index < len(arr):
        raise Lenet5Error(f"--index {index} is out of range: {path} holds {len(arr)} images (0-{len(arr) - 1})")
    labels = labels_beside(path)
    if labels is not None and len(labels) != len(arr):
        raise Lenet5Error(f"{path}: {len(arr)} images but {len(labels)} labels beside it")
    label = None if labels is None else int(labels[index])
    return normalize(arr[index:index + 1]), label  # (1, 28, 28) -> (1, 1, 32, 32)


def threshold(reject, threshold_from):
    """The rejection threshold: ``--reject``, else the one in ``--threshold-from``, else the default
    eval.json's when it exists and has one, else ``DEFAULT_THRESHOLD``."""
    if reject is not None:
        return reject
    if threshold_from is not None:
        return read_threshold(threshold_from)
    if not DEFAULTS["eval_metrics"].exists():
        return DEFAULT_THRESHOLD
    try:
        return read_threshold(DEFAULTS["eval_metrics"])
    except Lenet5Error as e:
        echo(f"note: {e}; using the default threshold {DEFAULT_THRESHOLD:g}")
        return DEFAULT_THRESHOLD


def answer(name, y, t, label):
    """The JSON object for penalties ``y`` ``(10,)`` at threshold ``t``."""
    best, second = (int(d) for d in np.argsort(y, kind="stable")[:2])
    conf = float(margins(y[None])[0])  # (10,) -> (1, 10) -> (1,)
    out = {"input": name, "digit": None if conf < t else best, "best": best, "runner_up": second,
           "confidence": round(conf, 6), "threshold": t}
    if label is not None:
        out["label"] = label
    out["distances"] = [round(float(v), 4) for v in y]
    return out


def text(a):
    """One line for an answer of ``answer``."""
    if a["digit"] is None:
        line = (f"{a['input']}: unsure  confidence {a['confidence']:.1f} < {a['threshold']:g}  "
                f"({a['best']} or {a['runner_up']})")
    else:
        line = f"{a['input']}: {a['digit']}  confidence {a['confidence']:.1f}"
    return line + (f"  true {a['label']}" if "label" in a else "")


Images = Annotated[Optional[list[Path]], typer.Argument(help="PNG/JPEG files (one digit each) or folders of them.")]
Reject = Annotated[Optional[float], typer.Option(help="Answer 'unsure' when the confidence is below this (0: never).",
                                                 min=0)]
ThresholdFrom = Annotated[Optional[Path], typer.Option(
    help="An eval.json holding reject_threshold (default: metrics/eval.json if it exists, else 10).")]


def predict(images: Images = None,
            model: Annotated[Path, typer.Option(help="Trained weights (.npz).")] = DEFAULTS["model"],
            idx: Annotated[Optional[Path], typer.Option(help="An IDX image file (e.g. data/raw/t10k-images-idx3-ubyte).")] = None,
            index: Annotated[int, typer.Option(help="Which image of --idx.", min=0)] = 0,
            reject: Reject = None,
            threshold_from: ThresholdFrom = None,
            as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per input.")] = False):
    """Recognize digits in image files, folders or an IDX file: one line per input, exit 1 if any failed."""
    from ..model import LeNet5

    if not images and idx is None:
        raise Lenet5Error("predict: give one or more image files or folders, or --idx FILE --index N")
    if not Path(model).exists():
        raise Lenet5Error(f"{model}: no such file; make one with `dvc repro` or `lenet5 train`")
    net = LeNet5.load(model)
    t = threshold(reject, threshold_from)
    inputs = ([(None, None)] if idx is not None else []) + expand(images or [])  # None: the --idx image
    failed = 0
    for path, error in inputs:
        name, label = (f"{shown(idx)}[{index}]" if path is None else shown(path)), None
        try:
            if error is not None:
                raise Lenet5Error(error)
            if path is None:
                x, label = input_from_idx(idx, index)
            else:
                x = load_digit(path)[None]  # (1, 32, 32) -> (1, 1, 32, 32)
        except (Lenet5Error, OSError) as e:
            failed += 1
            if as_json:
                print(json.dumps({"input": name, "error": describe(e)}), flush=True)
            else:
                echo(f"error: {describe(e)}")
            continue
        a = answer(name, net.forward(x)[0], t, label)
        print(json.dumps(a) if as_json else text(a), flush=True)
    if failed:
        raise typer.Exit(1)
