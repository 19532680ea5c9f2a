"""How a batch is shared out, and how the per-chunk means are put back together.

A batch of n images is cut into at most ``threads`` contiguous chunks (``spans``), each computed by
one process (``workers.py``); every chunk returns means over its images, and ``weighted_sum``
combines them, weighted by their share of the batch, always in chunk order (``combine``). The chunking depends
only on n and ``threads``, so results are deterministic for a given ``threads``.
"""

import numpy as np


def spans(threads, n, min_chunk):
    """Contiguous ``(start, stop)`` pieces of ``range(n)``: ``threads`` of them at most, each of
    about ``min_chunk`` items or more (a batch smaller than 2 * min_chunk stays whole)."""
    k = max(1, min(int(threads), n // min_chunk))
    b = np.linspace(0, n, k + 1).round().astype(int)
    return list(zip(b[:-1].tolist(), b[1:].tolist()))


def weighted_sum(parts):
    """``sum_i w_i * d_i`` for dicts of arrays ``d_i`` sharing their keys (same order every time)."""
    (w0, first), rest = parts[0], parts[1:]
    out = {k: v * w0 for k, v in first.items()}
    for w, d in rest:
        for k in out:
            out[k] += d[k] * w
    return out


def combine(parts):
    """One ``(loss, grads, y)`` from per-chunk ``[(fraction, (loss, grads, y or None)), ...]``: the
    fraction-weighted mean of the losses and gradients, the outputs stacked in order."""
    if len(parts) == 1:
        return parts[0][1]
    loss = sum(w * r[0] for w, r in parts)  # chunk means weighted by chunk size -> batch mean
    ys = [r[2] for _, r in parts]
    return loss, weighted_sum([(w, r[1]) for w, r in parts]), None if ys[0] is None else np.concatenate(ys)
