"""How a batch is cut, and how the per-part means are put back together: the one place that decides it.

A batch of n images is cut into at most ``threads`` contiguous chunks (``spans``), one per process
(``pool.py``), each of at least ``MIN_CHUNK`` images. A process cuts its chunk into pieces of at most
``PIECE`` images, so that a piece's temporaries stay in the CPU's cache: equal pieces for means
(``mean_over_pieces``), fixed blocks of ``PIECE`` for inference (``nn/infer.py`` takes the size).
Every part returns means over its images, and ``combine`` merges them weighted by their share of the
batch, always in order. The cutting depends only on n and ``threads``, so results are deterministic
for a given ``threads``.
"""

import functools

import numpy as np

# images; measured: two chunks of 16 in two processes beat one chunk of 32 by 40 %
MIN_CHUNK = 16
# images per piece of a process's chunk. Measured on one core: a gradient over 256 images ran at
# 7,900 images/s in one piece and 9,700 in pieces of 64; inference at 37,000-39,000 images/s.
PIECE = 64


@functools.lru_cache(maxsize=256)  # asked once per batch with the same few (n, k)
def _cut(n, k):
    """``k`` contiguous ``(start, stop)`` parts of ``range(n)`` of (nearly) equal size, as a tuple."""
    b = np.linspace(0, n, k + 1).round().astype(int)
    return tuple(zip(b[:-1].tolist(), b[1:].tolist()))


def spans(threads, n, min_chunk=MIN_CHUNK):
    """Contiguous ``(start, stop)`` pieces of ``range(n)``: ``threads`` of them at most, each of
    about ``min_chunk`` items or more (a batch smaller than 2 * min_chunk stays whole)."""
    return _cut(n, max(1, min(int(threads), n // min_chunk)))


def weighted_sum(parts):
    """``sum_i w_i * d_i`` for dicts of arrays ``d_i`` sharing their keys (same order every time)."""
    (w0, first), rest = parts[0], parts[1:]
    out = {k: v * w0 for k, v in first.items()}
    for w, d in rest:
        for k in out:
            out[k] += d[k] * w
    return out


def combine(parts):
    """One ``(loss, grads, y)`` from per-part ``[(fraction, (loss, grads, y or None)), ...]``: the
    fraction-weighted mean of the losses and gradients, the outputs stacked in order."""
    if len(parts) == 1:
        return parts[0][1]
    loss = sum(w * r[0] for w, r in parts)  # part means weighted by part size -> batch mean
    ys = [r[2] for _, r in parts]
    return loss, weighted_sum([(w, r[1]) for w, r in parts]), None if ys[0] is None else np.concatenate(ys)


def mean_over_pieces(fn, x, labels=None, size=PIECE):
    """``fn(x, labels) -> (loss, means, y or None)`` computed over consecutive pieces of at most
    ``size`` images and combined in order (one call when x fits in one piece)."""
    n = len(x)
    if n <= size:
        return fn(x, labels)
    return combine([((b - a) / n, fn(x[a:b], None if labels is None else labels[a:b]))
                    for a, b in _cut(n, -(-n // size))])
