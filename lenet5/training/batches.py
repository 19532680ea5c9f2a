"""The mini-batches of one pass over the training set, each distorted as it is reached.

``augment`` is the one way a batch is distorted (``distort_batch``, then ``keep_originals``): for
the curvature sample before each epoch and for every mini-batch. The random numbers are drawn from
the run's generator in batch order, so a pass is the same for a given seed.

Batches are distorted in turn, in the loop's thread. A background thread that distorted the next
batch while the current one trained was measured slower on an idle 2-core machine: with two
processes sharing each batch, the thread was a third runnable thread on two cores, and the epoch
of 20,000 images at params.yaml's defaults took 2.41-2.45 s with it and 1.86-2.02 s without
(``lenet5 bench --images 20000 --pipeline``, runs alternated).
"""

from .distort import distort_batch, keep_originals


def augment(x, rng, distort):
    """Distorted copies of x when distortions are enabled (drawn from ``rng``), a share
    ``distort.originals`` of them left as they are; else x itself."""
    if not distort.enabled:
        return x
    d = distort_batch(x, rng, distort.translate, distort.scale, distort.squeeze, distort.shear)
    return keep_originals(d, x, rng, distort.originals)


def batches(train_x, order, batch_size, rng, distort):
    """``(indices, images)`` for each mini-batch of ``order``, distorted by ``augment``."""
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        yield idx, augment(train_x[idx], rng, distort)
