"""``lenet5 bench``: one training epoch and one inference pass on MNIST-shaped data, timed.

``lenet5 bench`` prints one JSON line. The data are random images of MNIST's shape and value range
(the cost of a pass does not depend on the pixels), so the benchmark needs no download. Training
does what ``fit`` does per batch: forward, backward, SDLM update, after one curvature estimate.
"""

import json
import os
import platform
import resource
import time
from typing import Annotated

import numpy as np

import typer

from ..errors import Lenet5Error
from ..model import LeNet5
from ..parallel.allocator import tune_allocator
from ..parallel.pool import resolve_threads
from ..training.sdlm import sdlm_update, step_sizes

MAX_IMAGES = 100_000  # 400 MB of float32 images; more is refused before anything is allocated


def _blas_info():
    """(threads, backend) of the BLAS library NumPy uses."""
    from threadpoolctl import threadpool_info

    info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return (info[0]["num_threads"], info[0].get("internal_api")) if info else (None, None)


def run_bench(batch_size=256, dtype="float32", images=60000, threads=0, repeat=1, infer_batch=1000, seed=0):
    """Time ``repeat`` training epochs (best kept) and inference; returns a JSON-ready dict.

    ``threads`` is what ``train.threads`` means: processes sharing each batch (``parallel/pool.py``),
    BLAS single-threaded inside them (0 = one per CPU).
    """
    from threadpoolctl import threadpool_limits

    tune_allocator()
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.1, 1.175, size=(images, 1, 32, 32)).astype(dtype)
    y = rng.integers(0, 10, size=images)
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
          infer_batch: Annotated[int, typer.Option(help="Images per inference call.", min=1, max=MAX_IMAGES)] = 1000):
    """Time one training epoch and one inference pass; print one JSON line of figures."""
    if dtype not in ("float32", "float64"):
        raise Lenet5Error(f"bench: --dtype must be float32 or float64, got {dtype!r}")
    print(json.dumps(run_bench(batch_size=batch_size, dtype=dtype, images=images, threads=threads,
                               repeat=repeat, infer_batch=infer_batch)))
