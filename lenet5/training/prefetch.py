"""The batches of one pass, each distorted while the batch before it trains.

``batches`` yields the same ``(indices, images)`` as cutting the pass's order into mini-batches and
distorting each with ``loop._augment`` (``distort_batch`` then ``keep_originals``), bit for bit, and
leaves the generator in the same state: every random number is still drawn here, in the calling
thread, in the same order (batch b's affine parameters, then its originals mask, then batch b+1's).
Only the resampling, pure arithmetic on numbers already drawn, runs in a background thread, one
batch ahead, while the caller computes the current batch's gradient (NumPy releases the interpreter
lock inside its loops, and the worker processes of ``lenet5/parallel`` wait for the caller between
batches, so a core is free for it). Nothing is drawn beyond the pass's last batch.

The loop asks for that only when batches are shared with worker processes (``threads`` > 1): in
one process there is no idle core to fill, and the thread's share of the interpreter lock slows the
gradient down. Measured on 2 busy cores (load 3.7-4.3), one epoch of 20,000 images, two runs each:
2 processes 4.26 and 3.55 s in turn, 3.58 and 3.37 s ahead; 1 process 3.44 and 2.90 s in turn,
3.64 and 3.00 s ahead.
"""

from concurrent.futures import ThreadPoolExecutor

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


def batches(train_x, order, batch_size, rng, distort, ahead=True):
    """``(indices, images)`` for each mini-batch of ``order``; distorted when ``distort.enabled``,
    one batch ahead in a background thread when ``ahead``, else in turn in this thread."""
    cuts = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if not distort.enabled:
        for idx in cuts:
            yield idx, train_x[idx]
        return
    if not ahead:
        for idx in cuts:
            x = train_x[idx]
            yield idx, _apply(x, *_draw(x, rng, distort))
        return

    def submit(pool, idx):
        x = train_x[idx]
        return pool.submit(_apply, x, *_draw(x, rng, distort))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lenet5-distort") as pool:
        ahead = submit(pool, cuts[0]) if cuts else None
        for b, idx in enumerate(cuts):
            xb = ahead.result()
            if b + 1 < len(cuts):
                ahead = submit(pool, cuts[b + 1])
            yield idx, xb
