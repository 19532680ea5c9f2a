"""One line of epoch timings for the lenet5 checkout at ROOT, for A/B comparisons of two checkouts.

Prints one JSON line: ``pipeline`` (seconds of one ``fit`` epoch at ROOT/params.yaml's settings on
60,000 random MNIST-shaped images, 10,000 test images: distortions, curvature, test pass), its user
and system CPU seconds, ``bare256`` and ``bare32`` (a bare epoch: forward, backward, SDLM update,
2 processes) and ``infer_img_s`` (60,000 images in calls of 1,000). Run two checkouts alternately,
several times, and compare medians, e.g.::

    for r in 1 2 3; do for root in /path/to/before .; do python benchmarks/ab_epoch.py "$root"; done; done
"""

import dataclasses
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent).resolve()
sys.path.insert(0, str(ROOT))

import lenet5.pipeline  # noqa: E402,F401  (first: pins the OpenBLAS kernel as the pipeline does, cpu.py)
import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from lenet5.model import LeNet5  # noqa: E402
from lenet5.parallel.allocator import tune_allocator  # noqa: E402
from lenet5.pipeline.config import load_params  # noqa: E402
from lenet5.training.loop import fit  # noqa: E402
from lenet5.training.sdlm import sdlm_update, step_sizes  # noqa: E402


def main():
    tune_allocator()
    p = load_params(ROOT / "params.yaml")
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.1, 1.175, size=(60000, 1, 32, 32)).astype(np.float32)  # (N, 1, 32, 32)
    y = rng.integers(0, 10, 60000)
    tx = rng.uniform(-0.1, 1.175, size=(10000, 1, 32, 32)).astype(np.float32)
    ty = rng.integers(0, 10, 10000)
    out = {"root": str(ROOT)}
    with threadpool_limits(1, "blas"):
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        with tempfile.TemporaryDirectory() as tmp:
            _, rows = fit(x, y, tx, ty, p.lr_scale, dataclasses.replace(p.train, epochs=1), p.distort,
                          Path(tmp) / "checkpoint.npz", progress=False, echo=lambda *_: None)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        out.update(pipeline=round(rows[0]["seconds"], 3), pipe_user=round(r1.ru_utime - r0.ru_utime, 2),
                   pipe_sys=round(r1.ru_stime - r0.ru_stime, 2))
        net = LeNet5(threads=2)
        steps = step_sizes(net.curvature(x[:500]), 1e-5, 1.0)  # tiny steps: the weights stay sane
        for bs in (256, 32):
            net.loss_and_grads(x[:bs], y[:bs])  # warm-up
            t0 = time.perf_counter()
            for i in range(0, 60000, bs):
                _, g = net.loss_and_grads(x[i:i + bs], y[i:i + bs])
                sdlm_update(net.params, g, steps)
            out[f"bare{bs}"] = round(time.perf_counter() - t0, 3)
        net.forward(x[:1000])
        t0 = time.perf_counter()
        for i in range(0, 60000, 1000):
            net.forward(x[i:i + 1000])
        out["infer_img_s"] = round(60000 / (time.perf_counter() - t0))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
