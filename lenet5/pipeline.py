"""The four pipeline steps - fetch, preprocess, train, evaluate - as plain functions.

Each takes the validated ``Params`` and the paths it reads and writes; the CLI (``lenet5 train``
...) and the DVC stage scripts (``stages/*.py``) both call these, so there is one implementation.
The default paths (``Layout``) are the ones ``dvc.yaml`` declares.
"""

import json
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import write_json
from .errors import Lenet5Error


@dataclass(frozen=True)
class Layout:
    """Where each step reads and writes, relative to the project root."""

    raw: Path = Path("data/raw")
    prepared: Path = Path("data/prepared")
    checkpoint: Path = Path("checkpoints/last.npz")
    model: Path = Path("models/lenet5.npz")
    train_metrics: Path = Path("metrics/train.json")
    train_log: Path = Path("metrics/train_log.csv")
    eval_metrics: Path = Path("metrics/eval.json")
    confusion: Path = Path("metrics/confusion.csv")
    plots: Path = Path("plots")


def run_fetch(params, out_dir, progress=True):
    """Download and verify the four MNIST files into ``out_dir`` ($MNIST_MIRROR tried first)."""
    from .fetch import fetch_mnist

    f = params.fetch
    return fetch_mnist(out_dir, list(f.mirrors), f.timeout, f.retries,
                       local_mirror=os.environ.get("MNIST_MIRROR") or None, progress=progress)


def run_preprocess(params, raw_dir, out_dir):
    """IDX files in ``raw_dir`` -> normalized ``.npy`` arrays in ``out_dir``."""
    from .prepare import prepare

    return prepare(raw_dir, out_dir, params.preprocess.train_limit, params.preprocess.test_limit)


def load_prepared(folder):
    """(train_x, train_y, test_x, test_y) from ``folder``, checked; images ``(N, 1, 32, 32)`` float32."""
    folder = Path(folder)
    out = []
    for split in ("train", "test"):
        x, y = (_load_npy(folder / f"{split}_{kind}.npy") for kind in ("images", "labels"))
        if x.dtype != np.float32 or x.ndim != 4 or x.shape[1:] != (1, 32, 32):
            raise Lenet5Error(f"{folder / f'{split}_images.npy'}: expected float32 (N, 1, 32, 32), "
                              f"got {x.dtype} {x.shape}")
        if len(x) and not (np.isfinite(x.min()) and np.isfinite(x.max())):  # min/max carry any NaN
            raise Lenet5Error(f"{folder / f'{split}_images.npy'}: holds NaN or infinite pixel values; "
                              f"expected finite values (rerun the preprocess step)")
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer) or (
                len(y) and (y.min() < 0 or y.max() > 9)):
            raise Lenet5Error(f"{folder / f'{split}_labels.npy'}: expected {len(x)} integer labels 0-9, "
                              f"got {y.dtype} {y.shape}")
        out += [x, y.astype(np.int64)]
    if len(out[0]) == 0:
        raise Lenet5Error(f"{folder / 'train_images.npy'}: holds no training images")
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


def run_train(params, layout=Layout(), progress=True):
    """Train (resuming from the checkpoint when it matches), then write the model and train metrics."""
    from .perf import tune_allocator
    from .trainlog import write_log_csv
    from .train import fit

    from threadpoolctl import threadpool_limits

    tune_allocator()
    tx, ty, vx, vy = load_prepared(layout.prepared)
    t0 = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):  # parallel over batch chunks instead (parallel.py)
        net, rows = fit(tx, ty, vx, vy, params.lr_scale, params.train, params.distort, layout.checkpoint,
                        progress=progress, on_epoch=lambda rows: write_log_csv(layout.train_log, rows))
    write_log_csv(layout.train_log, rows)
    net.save(layout.model)
    seconds = sum(r["seconds"] for r in rows)
    last = rows[-1]
    metrics = {
        "epochs": len(rows),
        "train_loss": round(last["train_loss"], 6),
        "train_error_on_the_fly": round(last["train_error"], 6),
        "test_error": round(last["test_error"], 6),
        "training_seconds": round(seconds, 1),
        "images_per_second": round(len(tx) * len(rows) / seconds, 1),
        "parameters": net.num_params(),
        "this_run_seconds": round(time.perf_counter() - t0, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    write_json(layout.train_metrics, metrics)
    return metrics


def run_evaluate(params, layout=Layout()):
    """Test metrics, final training error, confusion data and the PNG plots."""
    from .model import LeNet5
    from .plots import plot_confusion, plot_learning_curves, plot_misclassified
    from .trainlog import read_log_csv
    from .report import classification_metrics, confusion_matrix, most_confident_mistakes, write_confusion_csv

    net = LeNet5.load(layout.model)
    tx, ty, vx, vy = load_prepared(layout.prepared)
    bs = params.evaluate.batch_size
    y_test = _penalties(net, vx, bs)
    loss = float(y_test[np.arange(len(vy)), vy].astype(np.float64).mean()) if len(vy) else None
    metrics = classification_metrics(y_test, vy, loss)
    del metrics["confusion"]  # 100 numbers: kept as plot data (confusion.csv) and a picture instead
    train_pred = _penalties(net, tx, bs).argmin(axis=1)
    train_errors = int((train_pred != ty).sum())
    metrics["train_errors"] = train_errors
    metrics["train_error_rate"] = round(train_errors / len(ty), 6)
    write_json(layout.eval_metrics, metrics)
    pred = y_test.argmin(axis=1)
    write_confusion_csv(layout.confusion, pred, vy)
    plots = Path(layout.plots)
    plot_confusion(confusion_matrix(pred, vy), plots / "confusion.png")
    worst = most_confident_mistakes(y_test, vy, params.evaluate.gallery)
    plot_misclassified(vx[worst], vy[worst], pred[worst], plots / "errors.png")
    if Path(layout.train_log).exists():
        plot_learning_curves(read_log_csv(layout.train_log), plots / "learning_curves.png")
    return metrics


def _penalties(net, x, batch_size):
    """RBF outputs ``(N, 10)`` computed ``batch_size`` images at a time."""
    if len(x) == 0:
        return np.zeros((0, 10), dtype=net.dtype)
    return np.concatenate([net.forward(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def summary(metrics):
    """One-line JSON of a metrics dict, for the terminal."""
    return json.dumps({k: v for k, v in metrics.items() if not isinstance(v, (dict, list))})


def echo(msg):
    """Progress and results go to stderr; stdout stays clean for data."""
    print(msg, file=sys.stderr, flush=True)
