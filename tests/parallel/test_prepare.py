"""Batches prepared ahead: the workers resample the next batch while this process finishes the
current one (``Spec.prepare``, ``pool.py``, ``worker.py``), and nothing but the timing may change.

The reference is the same call without ``while_waiting``: every process then resamples its own
chunk. Results must be the same bytes, the prepared path must really be taken, and a batch that is
prepared but not used, or whose preparation failed, must not leak into another call.
"""

import numpy as np
import pytest

from conftest import committed_params
from lenet5 import LeNet5
from lenet5.errors import Lenet5Error
from lenet5.parallel import pool as pool_mod
from lenet5.pipeline.config import params_from_dict
from lenet5.training.batches import draw

DISTORT = params_from_dict(committed_params()).distort


def batches(sizes, dtype, seed=0):
    """``[(x, labels, warp)]``: images of ``dtype``, labels, and their drawn distortions."""
    rng = np.random.default_rng(seed)
    return [(rng.uniform(-0.1, 1.175, size=(n, 1, 32, 32)).astype(dtype), rng.integers(0, 10, size=n),
             draw(n, rng, DISTORT)) for n in sizes]


@pytest.fixture
def used(monkeypatch):
    """The areas ``settle`` returned, one per multi-process call (None: not prepared ahead)."""
    got = []
    settle = pool_mod.ProcessPool.settle

    def spy(self, given):
        got.append(settle(self, given))
        return got[-1]

    monkeypatch.setattr(pool_mod.ProcessPool, "settle", spy)
    return got


def chained(net, data):
    """Each call announces the next batch through ``while_waiting``, as the training loop does."""
    out = []
    for i, (x, labels, warp) in enumerate(data):
        nxt = data[i + 1] if i + 1 < len(data) else None
        out.append(net.loss_grads_and_outputs(x, labels, "map", 1.0, warp,
                                              lambda nxt=nxt: None if nxt is None else (nxt[0], nxt[2])))
    return out


def same(a, b):
    (la, ga, ya), (lb, gb, yb) = a, b
    return la == lb and ya.tobytes() == yb.tobytes() and all(ga[k].tobytes() == gb[k].tobytes() for k in ga)


@pytest.mark.parametrize("threads, dtype", [(1, "float32"), (2, "float32"), (3, "float32"), (2, "float64")])
def test_batches_prepared_ahead_give_the_same_bytes(threads, dtype, used):
    data = batches([48, 64, 48, 20, 48], dtype)  # 20: one chunk, no workers; 48 in 3 processes: 2 workers
    net = LeNet5(seed=3, dtype=dtype, threads=threads)
    ref = [net.loss_grads_and_outputs(x, labels, "map", 1.0, warp) for x, labels, warp in data]
    used.clear()
    got = chained(net, data)
    assert all(same(a, b) for a, b in zip(ref, got))
    if threads > 1:  # the first call and the one after the single-chunk batch start from raw images
        assert used == [None, 0, 1, None]


def test_images_of_another_dtype_are_not_prepared_and_keep_their_numbers(used):
    data = batches([48, 48, 48], "float32")
    net = LeNet5(seed=3, dtype="float64", threads=2)  # float32 images are resampled before conversion
    ref = [net.loss_grads_and_outputs(x, labels, "map", 1.0, warp) for x, labels, warp in data]
    used.clear()
    assert all(same(a, b) for a, b in zip(ref, chained(net, data)))
    assert used == [None, None, None]


def test_a_batch_prepared_but_not_given_is_dropped(used):
    (x1, l1, w1), (x2, _, w2), (x3, l3, w3) = batches([64, 64, 64], "float32", seed=1)
    net = LeNet5(seed=0, threads=2)
    ref = net.loss_grads_and_outputs(x3, l3, "map", 1.0, w3)
    net.loss_grads_and_outputs(x1, l1, "map", 1.0, w1, lambda: (x2, w2))
    used.clear()
    assert same(net.loss_grads_and_outputs(x3, l3, "map", 1.0, w3), ref)
    assert used == [None]
    (pool,) = [p for key, p in pool_mod._POOLS.items() if key[1] == 1 and key[2] == "float32"]
    assert all(not owed for owed in pool.owed) and pool.counters[0][0] == pool.counters[0][1]


def test_a_failed_preparation_is_raised_by_the_call_that_uses_the_batch_only():
    (x1, l1, w1), (x2, l2, w2) = batches([64, 64], "float32", seed=2)
    bad = (np.full_like(w2[0], np.nan), w2[1])  # no image can be resampled with these
    net = LeNet5(seed=0, threads=2)
    ref = net.loss_grads_and_outputs(x1, l1, "map", 1.0, w1)
    net.loss_grads_and_outputs(x1, l1, "map", 1.0, w1, lambda: (x2, bad))
    with pytest.raises(Lenet5Error, match="worker process failed: .*finite"):
        net.loss_grads_and_outputs(x2, l2, "map", 1.0, bad)
    net.loss_grads_and_outputs(x1, l1, "map", 1.0, w1, lambda: (x2, bad))
    assert same(net.loss_grads_and_outputs(x1, l1, "map", 1.0, w1), ref)  # another batch: no error
