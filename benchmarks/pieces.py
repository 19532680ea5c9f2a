"""How inference speed and inference bytes depend on the piece size (images per block of ``infer``).

For each piece size, runs ``nn/infer.infer`` on the same random MNIST-shaped images in one process
(BLAS on one thread, allocator tuned, as the pipeline runs it) and prints the best of five
throughputs and whether the penalties are the same bytes as with the size the code uses
(``parallel/chunks.PIECE``). The size is fixed, not chosen from the machine's caches, because the
bytes depend on it: the matrix products of a block of another width can round some images'
penalties differently, and a size picked per machine would make ``metrics/eval.json`` differ
between machines.

Usage: ``python benchmarks/pieces.py [--images 2000] [SIZE ...]``
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

from lenet5.model import LeNet5, _constants  # noqa: E402
from lenet5.nn.infer import fold, infer  # noqa: E402
from lenet5.parallel.allocator import tune_allocator  # noqa: E402
from lenet5.parallel.chunks import PIECE  # noqa: E402

SIZES = [8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512, 1000]


def count(text):
    """A command-line count: an integer from 1 to 100,000 (argparse prints one line otherwise)."""
    n = int(text)
    if not 1 <= n <= 100_000:
        raise argparse.ArgumentTypeError(f"expected 1 to 100000, got {n}")
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=count, default=2000)
    ap.add_argument("sizes", type=count, nargs="*", default=SIZES)
    args = ap.parse_args()
    tune_allocator()
    net = LeNet5(seed=0, dtype="float32")
    centres, _ = _constants("float32")
    x = np.random.default_rng(0).uniform(-0.1, 1.175, size=(args.images, 1, 32, 32)).astype(np.float32)
    folded = fold(net.params)
    with threadpool_limits(limits=1, user_api="blas"):
        ref = infer(x, folded, centres, PIECE)
        for size in args.sizes:
            y = infer(x, folded, centres, size)
            best = float("inf")
            for _ in range(5):
                t0 = time.perf_counter()
                infer(x, folded, centres, size)
                best = min(best, time.perf_counter() - t0)
            rows = int((y != ref).any(axis=1).sum())
            same = "same bytes" if rows == 0 else f"{rows} images differ (max {np.abs(y - ref).max():.2g})"
            print(f"piece {size:5d}: {args.images / best:8.0f} images/s   {same} as piece {PIECE}")


if __name__ == "__main__":
    main()
