"""Worker processes give the single-process gradients and curvatures, and fail cleanly.

``LeNet5(threads=k)`` computes gradients and curvatures in up to k processes (``lenet5/parallel/pool.py``);
the single-process computation is the reference. The chunk means are combined in another order,
so agreement is to rounding (float64), and repeated calls must be bitwise identical.
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lenet5 import LeNet5
from lenet5.errors import Lenet5Error
from lenet5.parallel.chunks import MIN_CHUNK, spans
from lenet5.model import SPEC
from lenet5.parallel import shared
from lenet5.parallel.pool import _POOLS


def batch(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.1, 1.175, size=(n, 1, 32, 32)), rng.integers(0, 10, size=n)


@pytest.mark.parametrize("threads, n", [(2, 2 * MIN_CHUNK), (3, 101), (2, 300)])
def test_processes_give_the_single_process_loss_gradients_outputs_and_curvature(threads, n):
    x, labels = batch(n)
    assert len(spans(threads, n, MIN_CHUNK)) == threads  # the batch really is split
    one, many = LeNet5(seed=1, dtype="float64", threads=1), LeNet5(seed=1, dtype="float64", threads=threads)
    for criterion, j in (("mse", 0.1), ("map", 1.0)):
        l1, g1, y1 = one.loss_grads_and_outputs(x, labels, criterion, j)
        lk, gk, yk = many.loss_grads_and_outputs(x, labels, criterion, j)
        assert lk == pytest.approx(l1, rel=1e-12)
        np.testing.assert_allclose(yk, y1, rtol=1e-13)
        for k in g1:
            np.testing.assert_allclose(gk[k], g1[k], rtol=1e-10, atol=1e-14)
    h1, hk = one.curvature(x), many.curvature(x)
    for k in h1:
        np.testing.assert_allclose(hk[k], h1[k], rtol=1e-10, atol=1e-16)


def test_workers_follow_the_weights_and_repeat_bitwise():
    x, labels = batch(80, seed=1)
    net = LeNet5(seed=2, dtype="float32", threads=2)
    first = net.loss_and_grads(x, labels)
    assert net.loss_and_grads(x, labels)[0] == first[0]
    net.params["F6.bias"] += 0.5  # the workers must see the new weights
    moved = net.loss_and_grads(x, labels)
    ref = LeNet5.from_params(net.params).loss_and_grads(x, labels)
    assert moved[0] != first[0] and moved[0] == pytest.approx(ref[0], rel=1e-5)


def test_an_error_in_a_worker_is_one_lenet5_error_and_the_pool_stays_usable():
    x, labels = batch(64, seed=2)
    bad = labels.copy()
    bad[-1] = 12  # only the second chunk, computed by the worker, sees it
    net = LeNet5(seed=0, dtype="float64", threads=2)
    with pytest.raises(Lenet5Error, match="worker process failed"):
        net.loss_and_grads(x, bad)
    with pytest.raises(ValueError):  # the first chunk fails here; the worker's reply is still collected
        net.loss_and_grads(x, labels, criterion="nonsense")
    np.testing.assert_allclose(net.loss_and_grads(x, labels)[0],
                               LeNet5(seed=0, dtype="float64").loss_and_grads(x, labels)[0], rtol=1e-12)


def test_a_killed_worker_is_reported_and_replaced():
    x, labels = batch(64, seed=3)
    net = LeNet5(seed=0, dtype="float64", threads=2)
    net.loss_and_grads(x, labels)
    pool = _POOLS[(SPEC, 1, "float64")]
    os.kill(pool.procs[0].pid, signal.SIGKILL)
    pool.procs[0].join(5)
    with pytest.raises(Lenet5Error, match="worker process died"):
        net.loss_and_grads(x, labels)
    assert _POOLS.get((SPEC, 1, "float64")) is not pool
    assert np.isfinite(net.loss_and_grads(x, labels)[0])  # fresh workers


def test_bad_shapes_are_refused_before_any_worker_starts():
    x, labels = batch(64, seed=4)
    net = LeNet5(seed=0, dtype="float64", threads=2)
    with pytest.raises(ValueError, match=r"\(N, 1, 32, 32\)"):
        net.loss_and_grads(x.reshape(64, 32, 32), labels)
    with pytest.raises(ValueError, match="labels must have shape"):
        net.loss_and_grads(x, labels[:-1])
    with pytest.raises(ValueError, match=r"\(N, 1, 32, 32\)"):
        net.curvature(x[:, :, :28, :28])
    with pytest.raises(ValueError, match=r"extra must have shape \(64, 7\)"):
        net.loss_grads_and_outputs(x, labels, warp=(np.zeros((63, 2, 3)), None))
    np.testing.assert_allclose(net.loss_and_grads(x, labels)[0],  # the workers are still in step
                               LeNet5(seed=0, dtype="float64").loss_and_grads(x, labels)[0], rtol=1e-12)


@pytest.mark.parametrize("threads, dtype, model_dtype", [(1, "float32", "float32"), (2, "float32", "float32"),
                                                         (3, "float64", "float64"), (1, "float32", "float64"),
                                                         (2, "float32", "float64"), (3, "float32", "float64")])
def test_each_process_distorting_its_own_images_gives_the_same_bytes(threads, dtype, model_dtype):
    """The gradient of distorted images is the same whether this process resamples the batch or each
    process resamples its own chunk (``warp=``): the training loop's numbers do not depend on it.
    Images of another dtype than the weights (float32 MNIST, float64 training) are resampled in
    their own dtype either way."""
    from lenet5.pipeline.config import params_from_dict
    from lenet5.training.batches import augment, draw
    from conftest import committed_params

    distort = params_from_dict(committed_params()).distort
    x, labels = batch(96, seed=5)
    x = x.astype(dtype)
    plan = draw(96, np.random.default_rng(2), distort)
    assert plan[1].any()  # some images are kept as they are, the others resampled
    net = LeNet5(seed=0, dtype=model_dtype, threads=threads)
    l1, g1, y1 = net.loss_grads_and_outputs(augment(x, np.random.default_rng(2), distort), labels, "map", 1.0)
    l2, g2, y2 = net.loss_grads_and_outputs(x, labels, "map", 1.0, warp=plan)
    assert l1 == l2 and y1.tobytes() == y2.tobytes()
    assert all(g1[k].tobytes() == g2[k].tobytes() for k in g1)
    l3 = net.loss_grads_and_outputs(x, labels, "map", 1.0)[0]
    assert l3 != l1  # the warp was applied


def test_workers_answer_while_watching_and_after_sleeping_and_count_every_message():
    """A worker watches a shared counter for ``SPIN`` seconds after each reply, then sleeps in its
    pipe read: commands must be answered in both states, and the counters must stay in step."""
    x, labels = batch(64, seed=6)
    net = LeNet5(seed=0, dtype="float64", threads=2)
    first = net.loss_and_grads(x, labels)[0]
    assert net.loss_and_grads(x, labels)[0] == first  # at once: the worker is still watching
    time.sleep(10 * shared.SPIN)
    assert net.loss_and_grads(x, labels)[0] == first  # after it went to sleep
    (pool,) = [p for key, p in _POOLS.items() if key[0] is SPEC and key[1] == 1 and key[2] == "float64"]
    deadline = time.monotonic() + 5  # the worker raises its reply counter just after sending the reply
    while pool.counters[0][1] != pool.counters[0][0] and time.monotonic() < deadline:
        time.sleep(0.001)
    sent, replied = pool.counters[0]
    assert sent == replied >= 3


@pytest.mark.parametrize("threads", [1, 2])
def test_while_waiting_runs_once_per_call_and_its_error_leaves_the_pool_usable(threads):
    x, labels = batch(64, seed=7)
    net = LeNet5(seed=0, dtype="float64", threads=threads)
    calls = []
    loss = net.loss_grads_and_outputs(x, labels, while_waiting=lambda: calls.append(1))[0]
    assert calls == [1]
    x2, labels2 = batch(64, seed=8)
    other = net.loss_grads_and_outputs(x2, labels2)[0]
    assert other != loss

    def fails():
        raise RuntimeError("drawing the next batch failed")

    with pytest.raises(RuntimeError, match="next batch"):
        net.loss_grads_and_outputs(x, labels, while_waiting=fails)
    # the failed call's replies were collected: the next call reads its own, not the failed one's
    assert net.loss_grads_and_outputs(x2, labels2)[0] == other


def test_processes_watch_only_when_they_fit_on_the_cpus(monkeypatch):
    monkeypatch.setattr(shared.os, "sched_getaffinity", lambda pid: {0, 1})
    assert shared.spin_for(1) == shared.SPIN > 0  # this process and one worker on two CPUs
    assert shared.spin_for(2) == 0.0  # three processes on two CPUs: sleep at once


ORPHAN = """
import time, numpy as np
from lenet5 import LeNet5
from lenet5.parallel import pool as workers
net = LeNet5(seed=0, threads=3)  # two workers: the second also inherits the first one's pipe
net.forward(np.zeros((96, 1, 32, 32), np.float32))
print(*(p.pid for pool in workers._POOLS.values() for p in pool.procs), flush=True)
time.sleep(60)
"""


def test_workers_exit_when_their_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", ORPHAN], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2
    finally:
        parent.kill()  # SIGKILL: no atexit, no clean-up, only the pipes closing
        parent.wait()
    deadline = time.monotonic() + 10
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if _alive(p)]
        time.sleep(0.05)
    assert not pids, f"worker processes {pids} outlived their parent"


def _alive(pid):
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def test_results_of_one_call_are_not_changed_by_the_next():
    """The workers' results are read from shared memory that the next command overwrites: what a
    call returned must already be the caller's own arrays."""
    net = LeNet5(seed=0, threads=2)
    x, y = batch(64, seed=1)
    loss, grads, out = net.loss_grads_and_outputs(x, y)
    kept = ({k: v.copy() for k, v in grads.items()}, out.copy())
    h = net.curvature(x)
    kept_h = {k: v.copy() for k, v in h.items()}
    x2, y2 = batch(64, seed=2)
    net.loss_grads_and_outputs(x2, y2)
    net.curvature(x2)
    net.forward(x2)
    assert all(np.array_equal(grads[k], kept[0][k]) for k in grads) and np.array_equal(out, kept[1])
    assert all(np.array_equal(h[k], kept_h[k]) for k in h)


BLAS_THREADS = """
import numpy as np
from threadpoolctl import threadpool_info
from lenet5.parallel.pool import map_chunks
from lenet5.parallel.spec import Spec

def blas_threads():
    return max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")

def compute(op, x, labels, params, criterion, j, extra):  # each process reports its BLAS threads as its "loss"
    return float(blas_threads()), {}, None

spec = Spec(param_shapes={"w": (1,)}, sample_shape=(1,), outputs=1, compute=compute)
print(blas_threads(), *(r[0] for _, r in map_chunks(spec, "infer", {"w": np.zeros(1)}, np.zeros((64, 1)), threads=2)))
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="OpenBLAS runs one thread on one CPU anyway")
def test_processes_that_share_a_batch_run_blas_on_one_thread_each():
    """Two processes each running BLAS on every core would fight for the cores (inference 4-5x slower)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2"}  # what OpenBLAS takes by itself on 2 cores
    p = subprocess.run([sys.executable, "-c", BLAS_THREADS], capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr
    before, parent, worker = (float(v) for v in p.stdout.split())
    assert before == 2 and parent == 1 and worker == 1, p.stdout
