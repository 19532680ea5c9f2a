"""The mini-batches of one pass over the training set, and the distortions drawn for each.

``draw`` is the one way a batch's distortions are drawn (``draw_affine``, then
``draw_originals``), from the run's generator in batch order, so a pass is the same for a given
seed. The drawn plan ``(mats, keep)`` is applied by ``nn/warp.warp_except``: by ``augment`` here
(the curvature sample before each epoch), and for the mini-batches inside ``LeNet5``'s gradient
call: the worker processes resample the next batch while this process combines the current one's
gradients and updates the weights (``model.py``, ``parallel/worker.py``; the first batch of a pass
is resampled by each process for its own chunk). Each image is resampled on its own, so the
images are the same bytes either way (tests check it).

Batches are drawn in the loop's thread, each one while the worker processes finish the batch
before it (``loop.py``, through ``map_chunks``' ``while_waiting``, which hands the drawn batch on to
be resampled): the same draws in the same order, at a moment this process would otherwise wait.
There is no background thread: with two processes sharing each batch on two cores, a thread that
distorted the next batch was a third runnable thread, and the epoch of 20,000 images took
2.41-2.45 s with it against 1.86-2.02 s without (``lenet5 bench --images 20000 --pipeline``,
alternated; ``benchmarks/README.md``).
"""

from ..nn.warp import warp_except
from .distort import draw_affine, draw_originals


def draw(n, rng, distort):
    """The distortions of ``n`` images of 32x32 (the network's input): ``(mats (n, 2, 3) or None,
    keep (n,) bools or None)``.

    ``mats`` are ``random_affine``'s output-to-input matrices (None when distortions are off or all
    their maxima are 0); ``keep`` marks the share ``distort.originals`` left as they are.
    """
    if not distort.enabled:
        return None, None
    mats = draw_affine(n, rng, distort.translate, distort.scale, distort.squeeze, distort.shear)
    return mats, draw_originals(n, rng, distort.originals)


def augment(x, rng, distort):
    """x ``(N, 1, 32, 32)`` distorted as ``draw`` decides: a new array, or x itself when no image moves."""
    mats, keep = draw(len(x), rng, distort)
    return x if mats is None else warp_except(x, mats, keep)


def batches(train_x, order, batch_size, rng, distort):
    """``(indices, images, (mats, keep))`` for each mini-batch of ``order``: the images undistorted,
    with the distortions ``draw`` drew for them (to be applied with ``warp_except``)."""
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        yield idx, train_x[idx], draw(len(idx), rng, distort)
