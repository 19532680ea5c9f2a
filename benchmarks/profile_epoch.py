"""Where one training epoch's time goes: prints a breakdown of the pipeline's epoch and of a bare one.

Part 1, the pipeline's epoch: ``fit`` for one epoch at params.yaml's ``train:``/``distort:`` settings
(batch 32, 2 processes, distortions, curvature estimate, test pass over 10,000 images), on random
images of MNIST's shape, with timers wrapped around what the epoch loop calls. ``gradient`` is the
whole batch call; inside it, ``own chunk`` is this process's share, ``wait for worker`` the time it
then waits for the other process, ``copies + pipes`` the rest (weights and images into shared
memory, JSON commands, results copied back, chunks combined, and the next batch's images gathered
and distortions drawn while the worker finishes, whose draws are also timed apart). User and system CPU seconds and page
faults are given for this process and for the worker (from ``/proc``; the worker is forked before the timed epoch).

Part 2, per layer: the same epoch and a bare batch-256 epoch (forward, backward, SDLM update) in ONE
process (``threads: 1``), with every layer function timed (exclusive times: im2col/col2im are
counted apart from their convolution; ``gemm + rest`` is the convolution's own time; C1 and C3
are computed over 2x2 windows, ``nn/window.py``). The distortions are drawn in the loop's thread
(``training/batches.py``); with workers, they resample each next batch while this process
finishes the current one (``parallel/worker.py``), so the resampling timed here in part 1 is this
process's share of each pass's first batch and of the curvature sample, and ``wait for the
batch prepared ahead`` is how long this process waited for the workers' resampling.

Usage: ``python benchmarks/profile_epoch.py [--images N] [--parts 12]`` (timers add ~2 % overhead).
"""

import argparse
import collections
import dataclasses
import os
import resource
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import lenet5.pipeline  # noqa: E402,F401  (first: pins the OpenBLAS kernel as the pipeline does, cpu.py)
import lenet5.model as model_mod  # noqa: E402
import lenet5.nn.infer as infer_mod  # noqa: E402
import lenet5.nn.network as network  # noqa: E402
import lenet5.nn.layers as L  # noqa: E402
import lenet5.nn.window as Win  # noqa: E402
import lenet5.parallel.pool as pool_mod  # noqa: E402
import lenet5.training.loop as loop  # noqa: E402
import lenet5.training.batches as batches_mod  # noqa: E402
import lenet5.nn.warp as warp_mod  # noqa: E402
from lenet5.cli.bench import random_data  # noqa: E402
from lenet5.pipeline.config import load_params  # noqa: E402
from lenet5.training.sdlm import sdlm_update, step_sizes  # noqa: E402

EXCL = collections.defaultdict(float)  # label -> exclusive seconds
CALLS = collections.Counter()
STACK = []  # [label, child seconds] of the timed calls in progress
PHASE = ["-"]
LAYER = {(6, 28, 28): "C1", (6, 14, 14): "S2", (16, 10, 10): "C3", (16, 5, 5): "S4", (120,): "C5", (84,): "F6", (24,): "C1", (64,): "C3",
         6: "C1", 16: "C3", 120: "C5", 84: "F6"}


def timed(fn, label_of):
    """fn wrapped: its exclusive time is added to EXCL[label_of(args)]."""
    def wrapper(*a, **k):
        label = label_of(*a, **k)
        STACK.append([label, 0.0])
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            dt = time.perf_counter() - t0
            _, child = STACK.pop()
            EXCL[label] += dt - child
            CALLS[label] += 1
            if STACK:
                STACK[-1][1] += dt
    return wrapper


def phased(fn, phase):
    def wrapper(*a, **k):
        PHASE[0] = phase
        return fn(*a, **k)
    return wrapper


def layer_of_map(x, *_a, **_k):
    return LAYER.get(tuple(x.shape[:-1]), "?")


def patch_layers():
    """Time every layer function of nn/layers.py, labelled by phase and layer."""
    p = lambda s: f"{PHASE[0]:5s} {s}"  # noqa: E731
    conv_in = {1: "C1", 6: "C3", 16: "C5"}  # a convolution's input channels -> its name
    sub = {6: "S2", 16: "S4"}
    L.im2col = timed(L.im2col, lambda x, k: p(f"{conv_in[x.shape[0]]} im2col"))
    L.col2im = timed(L.col2im, lambda d, s, k: p(f"{conv_in[s[0]]} col2im"))
    L.conv_forward = timed(L.conv_forward, lambda x, w, b: p(f"{LAYER[w.shape[0]]} conv fwd gemm + rest"))
    L.conv_backward = timed(L.conv_backward,
                            lambda d, c, need_dx=True: p(f"{LAYER[c['w'].shape[0]]} conv bwd gemm + rest"))
    L.conv_curvature = timed(L.conv_curvature, lambda d, c, need_dx=True: p(f"{LAYER[c['w'].shape[0]]} conv squares"))
    win = {1: "C1", 6: "C3"}  # a windowed convolution's input channels -> its name
    Win.window_cols = timed(Win.window_cols, lambda x: p(f"{win[x.shape[0]]} window im2col"))
    Win.window_col2im = timed(Win.window_col2im, lambda d, s: p(f"{win[s[0]]} window col2im"))
    Win.conv_forward = timed(Win.conv_forward, lambda x, w, b: p(f"{LAYER[w.shape[0]]} window conv fwd gemm + rest"))
    Win.conv_backward = timed(Win.conv_backward,
                              lambda d, c, need_dx=True: p(f"{LAYER[c['F']]} window conv bwd gemm + rest"))
    Win.conv_curvature = timed(Win.conv_curvature, lambda d, c, need_dx=True: p(f"{LAYER[c['F']]} conv squares"))
    Win.subsample_forward = timed(Win.subsample_forward, lambda x, c, b, s: p(f"{sub[s[0]]} subsample fwd"))
    Win.subsample_backward = timed(Win.subsample_backward, lambda d, c: p(f"{sub[d.shape[0]]} subsample bwd"))
    Win.subsample_curvature = timed(Win.subsample_curvature, lambda d, c: p(f"{sub[d.shape[0]]} subsample squares"))
    L.full_forward = timed(L.full_forward, lambda x, w, b: p("F6 full fwd"))
    L.full_backward = timed(L.full_backward, lambda d, c, need_dx=True: p("F6 full bwd"))
    L.full_curvature = timed(L.full_curvature, lambda d, c, need_dx=True: p("F6 full squares"))
    L.squash_forward = timed(L.squash_forward, lambda a: p(f"{layer_of_map(a)} squash fwd"))
    L.squash_backward = timed(L.squash_backward, lambda d, c: p(f"{layer_of_map(d)} squash bwd"))
    L.squash_curvature = timed(L.squash_curvature, lambda d, c: p(f"{layer_of_map(d)} squash bwd"))
    L.rbf_forward = timed(L.rbf_forward, lambda x, c: p("RBF fwd"))
    L.rbf_backward = timed(L.rbf_backward, lambda d, c: p("RBF bwd + loss"))
    network.loss_and_dy = timed(network.loss_and_dy, lambda *a: p("RBF bwd + loss"))
    model_mod.loss_grads = phased(model_mod.loss_grads, "grad")
    model_mod.curvature = phased(model_mod.curvature, "curv")
    model_mod.infer = phased(model_mod.infer, "test")
    q = lambda s: lambda t, *a: p(f"{ {1: 'C1+S2', 6: 'C3+S4', 16: 'C5'}[t.shape[0]]} {s}")  # noqa: E731
    infer_mod.window_cols = timed(infer_mod.window_cols, q("window im2col"))
    infer_mod._conv_subsample_tanh = timed(infer_mod._conv_subsample_tanh, q("window gemm + sums + tanh"))
    infer_mod.im2col = timed(infer_mod.im2col, q("im2col"))
    infer_mod._conv_tanh = timed(infer_mod._conv_tanh, q("gemm + tanh"))


def cpu_of(pid):
    """(user, system) CPU seconds and (minor faults) of a process, from /proc/PID/stat."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(f[11]) / tick, int(f[12]) / tick, int(f[7])


def patch_loop():
    """Time the epoch loop's steps (fit's own structure is left as it is)."""
    batches_mod.draw_affine = timed(batches_mod.draw_affine, lambda *a, **k: "distortions: random draws")
    warp_mod.affine_warp = timed(warp_mod.affine_warp, lambda *a, **k: "distortions: resampling (own chunk)")
    loop.sdlm_update = timed(loop.sdlm_update, lambda *a, **k: "SDLM update")
    loop.save_checkpoint = timed(loop.save_checkpoint, lambda *a: "checkpoint write (not in the epoch's seconds)")
    for name, label in (("loss_grads_and_outputs", "gradient: copies + pipes + combine + next batch"),
                        ("curvature", "curvature estimate: copies + pipes"),
                        ("predict", "test pass (10,000 images): copies + pipes")):
        setattr(model_mod.LeNet5, name, timed(getattr(model_mod.LeNet5, name), lambda *a, _l=label, **k: _l))
    chunk = model_mod._chunk
    own = {"grads": "gradient: own chunk", "curvature": "curvature estimate: own chunk",
           "infer": "test pass: own chunk"}  # per layer (part 2): what the layers leave (transposes, pieces)
    model_mod.SPEC = dataclasses.replace(model_mod.SPEC, compute=timed(chunk, lambda op, *a: own[op]))
    pool_mod.ProcessPool.__init__ = timed(pool_mod.ProcessPool.__init__, lambda *a: "worker fork (once per run)")
    pool_mod.ProcessPool.settle = timed(pool_mod.ProcessPool.settle,
                                        lambda *a: "gradient: wait for the batch prepared ahead")
    pool_mod.ProcessPool.finish = timed(pool_mod.ProcessPool.finish,
                                        lambda self, op, c: own[op].replace("own chunk", "wait for worker + copy back"))


def report(title, total, extra=""):
    print(f"\n{title}: {total:.2f} s{extra}")
    for label, s in sorted(EXCL.items(), key=lambda kv: -kv[1]):
        if s >= 0.0005 * total:
            print(f"  {s:8.3f} s  {100 * s / total:5.1f} %  {label}  ({CALLS[label]} calls)")
    rest = total - sum(s for label, s in EXCL.items() if not label.startswith("checkpoint"))
    print(f"  {rest:8.3f} s  {100 * rest / total:5.1f} %  "
          "the rest (loop, loss bookkeeping, labels)")
    EXCL.clear()
    CALLS.clear()


def pipeline_epoch(params, images, threads):
    """One timed epoch of fit; returns (wall seconds, this process (user, sys, faults), workers')."""
    train_x, train_y = random_data(images, 0, params.train.dtype)
    test_x, test_y = random_data(10000, 1, params.train.dtype)
    train = dataclasses.replace(params.train, epochs=1, threads=threads)
    if threads > 1:  # fork the worker first, big enough for the test pass's chunks, so /proc covers the epoch
        model_mod.LeNet5(threads=threads).forward(test_x[:1000])
        EXCL.clear()
        CALLS.clear()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    with tempfile.TemporaryDirectory() as tmp:
        _, rows = loop.fit(train_x, train_y, test_x, test_y, params.lr_scale, train, params.distort,
                           Path(tmp) / "ckpt.npz", progress=False, echo=lambda *_: None)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        workers = [cpu_of(p.pid) for pl in pool_mod._POOLS.values() for p in pl.procs]
    pool_mod.close_all()
    me = (r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime, r1.ru_minflt - r0.ru_minflt)
    return rows[0]["seconds"], me, workers


def bare_epoch(images, batch_size):
    """A bare epoch in this process: forward, backward, SDLM update per batch."""
    x, y = random_data(images)
    net = model_mod.LeNet5(seed=0, threads=1)
    steps = step_sizes(net.curvature(x[:500]), 1e-5, 1.0)
    EXCL.clear()
    CALLS.clear()
    update = timed(sdlm_update, lambda *a: "SDLM update")
    t0 = time.perf_counter()
    for i in range(0, images, batch_size):
        _, grads = net.loss_and_grads(x[i:i + batch_size], y[i:i + batch_size])
        update(net.params, grads, steps)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=60000)
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    from lenet5.parallel.allocator import tune_allocator

    tune_allocator()
    params = load_params(args.params)
    scale = f" for {args.images:,} images" + ("" if args.images == 60000 else
                                              f" (x{60000 / args.images:.2f} for an epoch of 60,000)")
    with threadpool_limits(limits=1, user_api="blas"):
        patch_loop()
        threads = params.train.threads or len(os.sched_getaffinity(0))
        wall, me, workers = pipeline_epoch(params, args.images, threads)
        cpu = (f"\n  CPU: this process {me[0]:.2f} s user + {me[1]:.2f} s system ({me[2]:,} page faults); "
               + "; ".join(f"worker {i + 1}: {u:.2f} s user + {s:.2f} s system ({f:,} page faults, since its fork)"
                           for i, (u, s, f) in enumerate(workers)))
        report(f"Pipeline epoch (fit: batch {params.train.batch_size}, {threads} processes, "
               f"distortions {params.distort.enabled}){scale}", wall, cpu)
        patch_layers()
        wall, me, _ = pipeline_epoch(params, args.images, 1)
        report(f"The same epoch in ONE process, per layer{scale}", wall,
               f"\n  CPU: {me[0]:.2f} s user + {me[1]:.2f} s system ({me[2]:,} page faults)")
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        wall = bare_epoch(args.images, 256)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        report(f"Bare epoch, batch 256, ONE process, per layer{scale}", wall,
               f"\n  CPU: {r1.ru_utime - r0.ru_utime:.2f} s user + {r1.ru_stime - r0.ru_stime:.2f} s system "
               f"({r1.ru_minflt - r0.ru_minflt:,} page faults)")


if __name__ == "__main__":
    main()
