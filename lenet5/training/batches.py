"""The mini-batches of one pass over the training set, each distorted as it is reached.

``batches`` yields the same ``(indices, images)`` as cutting the pass's order into mini-batches and
distorting each with ``loop._augment`` (``distort_batch`` then ``keep_originals``), bit for bit, and
leaves the generator in the same state: batch b's affine parameters, then its originals mask, then
batch b+1's. The random numbers are drawn apart from the resampling (``_draw``, ``_apply``) so that
the two can be timed apart (``benchmarks/profile_epoch.py``).

Batches are distorted in turn, in the loop's thread. A background thread that distorted the next
batch while the current one trained was measured slower on an idle 2-core machine: with two
processes sharing each batch, the thread was a third runnable thread on two cores, and the epoch
of 20,000 images at params.yaml's defaults took 2.41-2.45 s with it and 1.86-2.02 s without
(``lenet5 bench --images 20000 --pipeline``, runs alternated).
"""

from .distort import affine_warp, random_affine


def _draw(x, rng, distort):
    """One batch's random numbers, drawn as ``distort_batch`` and ``keep_originals`` draw them:
    ``(affine matrices or None, originals mask or None)``."""
    maxima = [float(distort.translate), float(distort.scale), float(distort.squeeze), float(distort.shear)]
    mats = random_affine(x.shape[0], rng, *maxima, shape=x.shape[-2:]) if any(maxima) else None
    share = float(distort.originals)
    keep = rng.random(len(x)) < share if share != 0 else None  # (N,) True: shown as it is
    return mats, keep


def _apply(x, mats, keep):
    """The distorted batch from its drawn numbers (``distort_batch`` + ``keep_originals``'s arithmetic)."""
    d = x.copy() if mats is None else affine_warp(x, mats)
    if keep is not None:
        d[keep] = x[keep]
    return d


def batches(train_x, order, batch_size, rng, distort):
    """``(indices, images)`` for each mini-batch of ``order``, distorted when ``distort.enabled``."""
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        x = train_x[idx]
        yield idx, (_apply(x, *_draw(x, rng, distort)) if distort.enabled else x)
