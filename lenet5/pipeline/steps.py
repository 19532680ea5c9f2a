"""The four pipeline steps - fetch, preprocess, train, evaluate - as plain functions.

Each takes the validated ``Params`` and the paths it reads and writes; the commands of
``commands.py`` (run by ``lenet5 <step>`` and by the DVC stage scripts) call these, so there is one
implementation. ``DEFAULTS`` are the paths ``dvc.yaml`` passes to the stages (a test holds them
together). Each step imports the layers it runs only when it runs.
"""

import json
import os
import resource
import time
from pathlib import Path

import numpy as np

from ..store.atomic import check_replaceable, remove_stale_temps_in, write_json

# The default paths of the pipeline, as dvc.yaml passes them to the stage scripts.
DEFAULTS = {
    "raw": Path("data/raw"),
    "prepared": Path("data/prepared"),
    "checkpoint": Path("checkpoints/last.npz"),
    "model": Path("models/lenet5.npz"),
    "train_metrics": Path("metrics/train.json"),
    "train_log": Path("metrics/train_log.csv"),
    "train_timing": Path("logs/train_timing.json"),
    "eval_metrics": Path("metrics/eval.json"),
    "confusion": Path("metrics/confusion.csv"),
    "plots": Path("plots"),
}


def _clean(*folders):
    """Remove the temp files a killed run left in each output folder (``store/atomic.py``)."""
    for folder in folders:
        remove_stale_temps_in(folder)


def fetch(params, out, progress=True):
    """Download and verify the four MNIST files into ``out`` ($MNIST_MIRROR tried first)."""
    from ..data.fetch import fetch_mnist

    f = params.fetch
    _clean(out)
    return fetch_mnist(out, list(f.mirrors), f.timeout, f.retries,
                       local_mirror=os.environ.get("MNIST_MIRROR") or None, progress=progress)


def preprocess(params, raw, out):
    """IDX files in ``raw`` -> normalized ``.npy`` arrays in ``out``; returns the counts."""
    from ..data.preprocess import prepare

    _clean(out)
    return prepare(raw, out, params.preprocess.train_limit, params.preprocess.test_limit)


def train(params, data, checkpoint, model, metrics, log, timing, progress=True):
    """Train (resuming from the checkpoint when it matches), then write the model, log and metrics.

    ``metrics`` holds only what the run computes (the same bytes on every machine that reproduces it,
    see ``lenet5/cpu.py``); how long it took, its memory and the machine go to ``timing``. The log, the
    model and the metrics are written together once training has ended (the checkpoint holds the log
    meanwhile), so an interrupted run leaves the earlier set as it was, never a new log beside an old model.
    """
    from threadpoolctl import threadpool_limits

    from ..cpu import machine, provenance
    from ..parallel.allocator import tune_allocator
    from ..store.prepared import read_prepared
    from ..store.trainlog import write_log_csv
    from ..training.loop import fit

    tune_allocator()
    for out in (model, metrics, log, timing):
        check_replaceable(out)
    _clean(*{Path(p).parent for p in (model, metrics, log)})
    tx, ty, vx, vy = read_prepared(data)
    t0 = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):  # parallel over batch chunks instead (parallel/)
        net, rows = fit(tx, ty, vx, vy, params.lr_scale, params.train, params.distort, checkpoint,
                        progress=progress)
    last = rows[-1]
    result = {
        "train_loss": round(last["train_loss"], 6),
        "train_error_on_the_fly": round(last["train_error"], 6),
        "epochs": len(rows),
        "parameters": net.num_params(),
        "provenance": provenance(),
    }
    timed = [r for r in rows if "seconds" in r]  # the epochs trained by this process
    seconds = sum(r["seconds"] for r in timed)
    write_json(timing, {
        "epoch_seconds": {str(r["epoch"]): round(r["seconds"], 2) for r in timed},
        "training_seconds": round(seconds, 1),
        "images_per_second": round(len(tx) * len(timed) / seconds, 1) if seconds else None,
        "this_run_seconds": round(time.perf_counter() - t0, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "machine": machine(),
    })
    write_log_csv(log, rows)
    net.save(model)
    write_json(metrics, result)
    return {**result, "training_seconds": round(seconds, 1)}


def evaluate(params, data, model, log, metrics, confusion, plots):
    """Test metrics, final training error, rejection figures, confusion data and the PNG plots.

    The forward passes run with BLAS on one thread, as in training: the products' bytes depend on
    how many threads OpenBLAS splits them over, which it would otherwise take from the machine's
    CPU count; and one thread ran the 70,000 images here in 1.6 s against 2.9 s with two.
    """
    from threadpoolctl import threadpool_limits

    from ..evaluation.metrics import (classification_metrics, confusion_matrix, most_confident_mistakes,
                                      write_confusion_csv)
    from ..evaluation.plots import plot_confusion, plot_learning_curves, plot_misclassified, plot_rejection
    from ..evaluation.rejection import rejection_curve, rejection_figures
    from ..model import LeNet5
    from ..parallel.allocator import tune_allocator
    from ..store.prepared import read_prepared
    from ..store.trainlog import read_log_csv

    tune_allocator()
    # every input is read and checked before the first output is touched
    net = LeNet5.load(model)
    tx, ty, vx, vy = read_prepared(data)
    rows = read_log_csv(log) if Path(log).exists() else None
    plots = Path(plots)
    for out in (metrics, confusion, *(plots / n for n in ("confusion.png", "errors.png", "rejection.png", "learning_curves.png"))):
        check_replaceable(out)
    _clean(Path(metrics).parent, Path(confusion).parent, plots)
    bs = params.evaluate.batch_size
    with threadpool_limits(limits=1, user_api="blas"):
        y_test = net.forward(vx, batch_size=bs)
        train_pred = net.predict(tx, bs)
    loss = float(y_test[np.arange(len(vy)), vy].astype(np.float64).mean()) if len(vy) else None
    m = classification_metrics(y_test, vy, loss)
    train_errors = int((train_pred != ty).sum())
    # the test error first: it leads `dvc exp show` and `dvc metrics diff`; the confusion matrix is
    # kept as plot data (confusion.csv) and a picture instead
    # (accuracy is 1 - error_rate: not written twice)
    result = {"error_rate": m["error_rate"], "errors": m["errors"], "n": m["n"],
              "train_error_rate": round(train_errors / len(ty), 6), "train_errors": train_errors}
    result.update({k: m[k] for k in ("mean_loss", "per_class_accuracy") if k in m})
    curve = rejection_curve(y_test, vy)
    figures = rejection_figures(curve)
    result.update(figures)  # appended after the keys above, so their order stays
    write_json(metrics, result)
    pred = y_test.argmin(axis=1)
    write_confusion_csv(confusion, pred, vy)
    plot_confusion(confusion_matrix(pred, vy), plots / "confusion.png")
    worst = most_confident_mistakes(y_test, vy, params.evaluate.gallery)
    plot_misclassified(vx[worst], vy[worst], pred[worst], plots / "errors.png", indices=worst)
    plot_rejection(curve, figures, plots / "rejection.png")
    if rows is not None:
        plot_learning_curves(rows, plots / "learning_curves.png", params.distort.enabled)
    return result


def summary(result):
    """One-line JSON of a metrics dict, for the terminal."""
    return json.dumps({k: v for k, v in result.items() if not isinstance(v, (dict, list))})
