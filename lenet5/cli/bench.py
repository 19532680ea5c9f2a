"""``lenet5 bench``: one training epoch and one inference pass on MNIST-shaped data, timed.

``lenet5 bench`` prints one JSON line. The data are random images of MNIST's shape and value range
(the cost of a pass does not depend on the pixels), so the benchmark needs no download. Training
does what ``fit`` does per batch: forward, backward, SDLM update, after one curvature estimate.

``--pipeline`` also times what the pipeline's train stage does per epoch: ``fit`` itself at the
``train:`` and ``distort:`` settings of params.yaml (batch 32 and 2 processes by default), i.e. the
curvature estimate, the distortions, the batches and the test pass over 10,000 images, so that its
epoch time is the one ``dvc repro`` takes (without the checkpoint write).
"""

import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Annotated

import numpy as np

import typer

from ..cpu import blas
from ..errors import Lenet5Error
from ..model import LeNet5
from ..parallel.allocator import tune_allocator
from ..parallel.pool import resolve_threads
from ..training.sdlm import sdlm_update, step_sizes

MAX_IMAGES = 100_000  # 400 MB of float32 images; more is refused before anything is allocated
TEST_IMAGES = 10_000  # the pipeline epoch's test pass, as MNIST's test set


def _blas_info():
    """(threads, backend) of the BLAS library NumPy uses."""
    info = blas()
    return info.get("num_threads"), info.get("internal_api")


def random_data(images, seed=0, dtype="float32"):
    """Random images ``(images, 1, 32, 32)`` in MNIST's normalised range and labels ``(images,)``."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.1, 1.175, size=(images, 1, 32, 32)).astype(dtype)  # (N, 1, 32, 32)
    return x, rng.integers(0, 10, size=images)


def run_pipeline_epochs(params, images=60000, test_images=TEST_IMAGES, repeat=1, seed=0):
    """Seconds of each of ``repeat`` epochs of ``fit`` at ``params`` (a ``Params``), on random data."""
    import dataclasses

    from threadpoolctl import threadpool_limits

    from ..training.loop import fit

    tune_allocator()
    train_x, train_y = random_data(images, seed, params.train.dtype)
    test_x, test_y = random_data(test_images, seed + 1, params.train.dtype)
    train = dataclasses.replace(params.train, epochs=repeat)
    with threadpool_limits(limits=1, user_api="blas"), tempfile.TemporaryDirectory() as tmp:
        _, rows = fit(train_x, train_y, test_x, test_y, params.lr_scale, train, params.distort,
                      Path(tmp) / "checkpoint.npz", progress=False, echo=lambda *_: None)
    return [r["seconds"] for r in rows]


def run_bench(batch_size=256, dtype="float32", images=60000, threads=0, repeat=1, infer_batch=1000, seed=0):
    """Time ``repeat`` training epochs (best kept) and inference; returns a JSON-ready dict.

    ``threads`` is what ``train.threads`` means: processes sharing each batch (``parallel/pool.py``),
    BLAS single-threaded inside them (0 = one per CPU).
    """
    from threadpoolctl import threadpool_limits

    tune_allocator()
    x, y = random_data(images, seed, dtype)
    threads = resolve_threads(threads)
    with threadpool_limits(limits=1, user_api="blas"):
        blas_threads, blas = _blas_info()
        net = LeNet5(seed=seed, dtype=dtype, threads=threads)
        steps = step_sizes(net.curvature(x[:500]), 1e-5, 1.0)  # tiny steps: the weights stay sane
        net.loss_and_grads(x[:batch_size], y[:batch_size])  # warm-up
        epoch = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            for i in range(0, images, batch_size):
                _, grads = net.loss_and_grads(x[i:i + batch_size], y[i:i + batch_size])
                sdlm_update(net.params, grads, steps)
            epoch.append(time.perf_counter() - t0)
        net.forward(x[:infer_batch])  # warm-up
        infer = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            for i in range(0, images, infer_batch):
                net.forward(x[i:i + infer_batch])
            infer.append(time.perf_counter() - t0)
    return {
        "framework": "lenet5-numpy",
        "numpy_version": np.__version__,
        "blas": blas,
        "train_images_per_s": round(images / min(epoch), 1),
        "epoch_seconds": round(min(epoch), 3),
        "infer_images_per_s": round(images / min(infer), 1),
        "dtype": dtype,
        "batch_size": batch_size,
        "infer_batch_size": infer_batch,
        "threads": threads,
        "blas_threads": blas_threads,
        "images": images,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cpu": platform.processor() or platform.machine(),
        "cpus_available": len(os.sched_getaffinity(0)),
    }


def bench(batch_size: Annotated[int, typer.Option(help="Training mini-batch size.", min=1, max=MAX_IMAGES)] = 256,
          dtype: Annotated[str, typer.Option(help="float32 or float64.")] = "float32",
          images: Annotated[int, typer.Option(help="Images per epoch.", min=1, max=MAX_IMAGES)] = 60000,
          threads: Annotated[int, typer.Option(
              help="CPU cores sharing each batch: one process each, BLAS single-threaded (0 = one per CPU).",
              min=0, max=64)] = 0,
          repeat: Annotated[int, typer.Option(help="Epochs timed; the best is kept.", min=1, max=100)] = 1,
          infer_batch: Annotated[int, typer.Option(help="Images per inference call.", min=1, max=MAX_IMAGES)] = 1000,
          pipeline: Annotated[bool, typer.Option(
              "--pipeline", help="Also time the pipeline's real epoch: fit() at the params file's train and "
                                 "distort settings (distortions, curvature, test pass of 10,000 images).")] = False,
          params: Annotated[Path, typer.Option(help="The params file --pipeline reads.")] = Path("params.yaml")):
    """Time one training epoch and one inference pass; print one JSON line of figures."""
    if dtype not in ("float32", "float64"):
        raise Lenet5Error(f"bench: --dtype must be float32 or float64, got {dtype!r}")
    settings = None
    if pipeline:
        from ..pipeline.config import load_params

        settings = load_params(params)  # checked before any timing starts
    out = run_bench(batch_size=batch_size, dtype=dtype, images=images, threads=threads,
                    repeat=repeat, infer_batch=infer_batch)
    if settings is not None:
        seconds = run_pipeline_epochs(settings, images=images, repeat=repeat)
        out.update(pipeline_epoch_seconds=round(min(seconds), 3),
                   pipeline_images_per_s=round(images / min(seconds), 1),
                   pipeline_batch_size=settings.train.batch_size,
                   pipeline_threads=resolve_threads(settings.train.threads),
                   pipeline_distort=settings.distort.enabled,
                   pipeline_test_images=TEST_IMAGES,
                   peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    print(json.dumps(out))
