"""Batches prepared ahead: the workers resample the next batch while this process finishes the
current one (``Spec.prepare``, ``pool.py``, ``worker.py``), and nothing but the timing may change.

The reference is the same call without ``while_waiting``: every process then resamples its own
chunk. Results must be the same bytes, the prepared path must really be taken, and a batch that is
prepared but not used, or whose preparation failed, must not leak into another call.
"""

import time

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
    assert all(not owed for owed in pool.owed)  # every reply read, the prepare command's too
    deadline = time.monotonic() + 5  # the worker raises its reply counter just after sending
    while pool.counters[0][1] != pool.counters[0][0] and time.monotonic() < deadline:
        time.sleep(0.001)
    assert pool.counters[0][0] == pool.counters[0][1]


def test_a_failed_preparation_is_raised_by_the_call_that_uses_the_batch_only():
    (x1, l1, w1), (x2, l2, w2) = batches([64, 64], "float32", seed=2)
    bad = (np.full_like(w2[0], np.nan), w2[1])  # no image can be resampled with these
    net = LeNet5(seed=0, threads=2)
    ref = net.loss_grads_and_outputs(x1, l1, "map", 1.0, w1)
    net.loss_grads_and_outputs(x1, l1, "map", 1.0, w1, lambda: (x2, bad))
    with pytest.raises(Lenet5Error, match="worker process failed: .*mats must be finite"):
        net.loss_grads_and_outputs(x2, l2, "map", 1.0, bad)
    net.loss_grads_and_outputs(x1, l1, "map", 1.0, w1, lambda: (x2, bad))
    assert same(net.loss_grads_and_outputs(x1, l1, "map", 1.0, w1), ref)  # another batch: no error


def test_a_batch_for_other_workers_is_not_prepared(monkeypatch):
    """In 3 processes, 48 images make 3 chunks (2 workers) and 40 make 2 (another pool of 1 worker):
    the 2 workers must not resample a batch that they will not compute."""
    sent = []
    prepare = pool_mod.ProcessPool.prepare
    monkeypatch.setattr(pool_mod.ProcessPool, "prepare", lambda self, *a, **k: sent.append(len(a[0])) or
                        prepare(self, *a, **k))
    (x1, l1, w1), (x2, l2, w2), (x3, _, w3) = batches([48, 40, 48], "float32", seed=3)
    net = LeNet5(seed=0, threads=3)
    ref = net.loss_grads_and_outputs(x2, l2, "map", 1.0, w2)
    net.loss_grads_and_outputs(x1, l1, "map", 1.0, w1, lambda: (x2, w2))
    got = net.loss_grads_and_outputs(x2, l2, "map", 1.0, w2, lambda: (x3, w3))
    assert same(got, ref) and sent == []  # neither 40 (other pool) nor 48 (from the 1-worker pool)


def test_ctrl_c_while_a_prepare_command_is_sent_discards_the_workers(monkeypatch):
    """A command written but not yet recorded would put every later reply one step off: the pool
    is replaced, and the next calls give the right bytes."""
    import json

    data = batches([64, 64, 64], "float32", seed=4)
    net = LeNet5(seed=1, threads=2)
    ref = [net.loss_grads_and_outputs(x, labels, "map", 1.0, warp) for x, labels, warp in data]
    send, armed = pool_mod.ProcessPool._send, [True]

    def interrupted(self, i, cmd):
        if cmd["op"] == "prepare" and armed and armed.pop():
            self.conns[i].send_bytes(json.dumps(cmd).encode())
            raise KeyboardInterrupt  # as if Ctrl-C came between the write and its bookkeeping
        return send(self, i, cmd)

    monkeypatch.setattr(pool_mod.ProcessPool, "_send", interrupted)
    (x0, l0, w0), (x1, _, w1) = data[:2]
    (pool,) = [p for key, p in pool_mod._POOLS.items() if key[1] == 1 and key[2] == "float32"]
    with pytest.raises(KeyboardInterrupt):
        net.loss_grads_and_outputs(x0, l0, "map", 1.0, w0, lambda: (x1, w1))
    assert all(p is not pool for p in pool_mod._POOLS.values())
    assert all(same(net.loss_grads_and_outputs(x, labels, "map", 1.0, warp), r)
               for (x, labels, warp), r in zip(data[1:], ref[1:]))


def test_a_reply_out_of_step_is_one_lenet5_error_and_the_workers_are_replaced():
    """A command this process did not record (what an interruption mid-send would leave) gets a
    reply that the next read takes for another command's: that is caught, not computed on."""
    import json

    data = batches([64, 64], "float32", seed=5)
    net = LeNet5(seed=1, threads=2)
    ref = net.loss_grads_and_outputs(*data[1][:2], "map", 1.0, data[1][2])
    (pool,) = [p for key, p in pool_mod._POOLS.items() if key[1] == 1 and key[2] == "float32"]
    pool.conns[0].send_bytes(json.dumps({"op": "prepare", "area": 0, "start": 0, "stop": 1}).encode())
    with pytest.raises(Lenet5Error, match="replied to 'prepare' when 'grads' was due"):
        net.loss_grads_and_outputs(*data[0][:2], "map", 1.0, data[0][2])
    assert all(p is not pool for p in pool_mod._POOLS.values())
    assert same(net.loss_grads_and_outputs(*data[1][:2], "map", 1.0, data[1][2]), ref)


def test_a_batch_larger_than_the_areas_is_resampled_by_each_process(monkeypatch, used):
    from lenet5.parallel import shared

    pool_mod.close_all()  # pools are made with the areas' size of their time
    monkeypatch.setattr(shared, "AHEAD", 40)
    try:
        data = batches([48, 48, 32], "float32", seed=6)
        net = LeNet5(seed=2, threads=2)
        ref = [net.loss_grads_and_outputs(x, labels, "map", 1.0, warp) for x, labels, warp in data]
        (pool,) = [p for key, p in pool_mod._POOLS.items() if key[1] == 1 and key[2] == "float32"]
        assert pool.layout.ahead == 40
        used.clear()
        assert all(same(a, b) for a, b in zip(ref, chained(net, data)))
        assert used == [None, None, 0]  # 48 images do not fit in 40 rows; 32 do
    finally:
        pool_mod.close_all()
