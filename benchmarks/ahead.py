"""What resampling the next batch in the workers saves: the pipeline's batches with and without it,
alternating in one process, so that the host's load falls on both alike.

Runs blocks of ``--batches`` mini-batches of the pipeline's epoch (params.yaml's ``train:`` and
``distort:``: batch 32, 2 processes, distortions drawn by ``training/batches.py``, the SDLM update
after each batch) on random MNIST-shaped images. Even blocks pass ``while_waiting`` a function
that draws the next batch and returns nothing, as the loop did before (each process then resamples
its own chunk); odd blocks return the drawn batch, as ``training/loop.py`` does now (the workers
resample it while this process updates the weights). Both draw the same way; the numbers of a
block do not depend on the mode (``tests/parallel/test_prepare.py``). Prints the median time per
batch of each mode and the median ratio of neighbouring blocks.

Usage: ``python benchmarks/ahead.py [--blocks 60] [--batches 100]``
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import lenet5.pipeline  # noqa: E402,F401  (first: pins the OpenBLAS kernel as the pipeline does, cpu.py)
import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from lenet5.cli.bench import random_data  # noqa: E402
from lenet5.model import LeNet5  # noqa: E402
from lenet5.parallel.allocator import tune_allocator  # noqa: E402
from lenet5.pipeline.config import load_params  # noqa: E402
from lenet5.training.batches import batches  # noqa: E402
from lenet5.training.sdlm import sdlm_update, step_sizes  # noqa: E402


def block(net, x, y, order, params, steps, rng, ahead):
    """Seconds per batch of one block; ``ahead``: announce each next batch to the workers."""
    t = params.train
    pending = batches(x, order, t.batch_size, rng, params.distort)
    upcoming = [next(pending, None)]

    def draw_next():
        upcoming.append(next(pending, None))
        return upcoming[-1][1:] if ahead and upcoming[-1] is not None else None

    n, t0 = 0, time.perf_counter()
    while upcoming[-1] is not None:
        idx, xb, warp = upcoming.pop()
        _, grads, _ = net.loss_grads_and_outputs(xb, y[idx], t.criterion, t.j, warp, draw_next)
        sdlm_update(net.params, grads, steps)
        n += 1
    return (time.perf_counter() - t0) / n


def count(text):
    """A command-line count: an integer from 1 to 100,000 (argparse prints one line otherwise)."""
    n = int(text)
    if not 1 <= n <= 100_000:
        raise argparse.ArgumentTypeError(f"expected 1 to 100000, got {n}")
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=count, default=60)
    ap.add_argument("--batches", type=count, default=100)
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    args = ap.parse_args()
    if args.blocks < 2:
        ap.error(f"--blocks must be at least 2 (one of each kind), got {args.blocks}")
    params = load_params(Path(args.params))
    tune_allocator()
    x, y = random_data(20000, 0, params.train.dtype)
    net = LeNet5(seed=0, dtype=params.train.dtype, threads=params.train.threads or 2)
    rng = np.random.default_rng(0)
    times = {False: [], True: []}
    with threadpool_limits(limits=1, user_api="blas"):
        steps = step_sizes(net.curvature(x[:500]), 1e-5, params.train.mu)
        for b in range(args.blocks):
            order = rng.permutation(len(x))[:args.batches * params.train.batch_size]
            times[b % 2 == 1].append(block(net, x, y, order, params, steps, rng, b % 2 == 1))
    before, after = np.array(times[False]), np.array(times[True])
    m = min(len(before), len(after))
    print(f"each process resamples its own chunk: {1e3 * np.median(before):.3f} ms per batch (median of {len(before)} blocks)")
    print(f"the workers resample the next batch:  {1e3 * np.median(after):.3f} ms per batch (median of {len(after)} blocks)")
    print(f"ratio of neighbouring blocks: median {np.median(after[:m] / before[:m]):.3f}")


if __name__ == "__main__":
    main()
