"""Data parallelism over threads for inference, and the chunking shared with ``workers.py``.

NumPy releases the GIL inside its array loops and BLAS calls, so chunks of a batch run truly in
parallel on the CPU's cores while each BLAS call stays single-threaded. The chunking depends only on
the batch size and the thread count, and the chunk results are combined in a fixed order, so
results are deterministic for a given ``threads``. The inference pass (``infer.py``) runs this way;
the gradient and curvature passes run their chunks in worker processes (``workers.py``), which the
interpreter lock does not slow down. Inference chunks have at least ``MIN_CHUNK`` images: fewer are
not worth a thread.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

MIN_CHUNK = 32
_POOLS = {}


def spans(threads, n, min_chunk=MIN_CHUNK):
    """Contiguous ``(start, stop)`` pieces of ``range(n)``: ``threads`` of them at most, each of
    about ``min_chunk`` items or more (a batch smaller than 2 * min_chunk stays whole)."""
    k = max(1, min(int(threads), n // min_chunk))
    b = np.linspace(0, n, k + 1).round().astype(int)
    return list(zip(b[:-1].tolist(), b[1:].tolist()))


def split_map(threads, n, fn):
    """``[(fraction, fn(start, stop)), ...]`` over ``spans(threads, n)``, in order.

    ``fraction`` is the chunk's share of the batch, the weight of a per-chunk mean.
    """
    pieces = spans(threads, n)
    if len(pieces) == 1:
        return [(1.0, fn(0, n))]
    pool = _POOLS.get(len(pieces))
    if pool is None:
        pool = _POOLS[len(pieces)] = ThreadPoolExecutor(max_workers=len(pieces), thread_name_prefix="lenet5")
    results = list(pool.map(lambda ab: fn(*ab), pieces))
    return [((b - a) / n, r) for (a, b), r in zip(pieces, results)]


def weighted_sum(parts):
    """``sum_i w_i * d_i`` for dicts of arrays ``d_i`` sharing their keys (same order every time)."""
    (w0, first), rest = parts[0], parts[1:]
    out = {k: v * w0 for k, v in first.items()}
    for w, d in rest:
        for k in out:
            out[k] += d[k] * w
    return out
