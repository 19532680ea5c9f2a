"""Bitwise-identical training whatever BLAS kernel the CPU would pick (lenet5/cpu.py).

The train stage runs a short training in separate processes, each with another OpenBLAS kernel
forced from outside (``OPENBLAS_CORETYPE``) and with NumPy's AVX-512 loops disabled or not; the
pinned kernel must make every model byte the same. A control run without the pin shows that the
kernels do differ, so the test can fail.
"""

import json
import subprocess
import sys

import pytest

from conftest import ROOT, make_project, run, stage_env
from lenet5.cpu import KERNEL, NEEDS, cpu_info

FLAGS = cpu_info()[1]
pytestmark = pytest.mark.skipif(not NEEDS <= FLAGS, reason="the pinned kernel needs AVX2 and FMA")
# kernels to force from outside: each only where this CPU can run it
OUTSIDE = [{}, {"OPENBLAS_CORETYPE": "Haswell"}, {"OPENBLAS_CORETYPE": "Zen"},
           {"OPENBLAS_CORETYPE": "Sandybridge"}, {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"}]
if "avx512f" in FLAGS:
    OUTSIDE.append({"OPENBLAS_CORETYPE": "SkylakeX"})

# fit() run in a process that imports NumPy before lenet5 can pin the kernel
UNPINNED = """
import numpy as np, sys, yaml
sys.path.insert(0, sys.argv[1])
from lenet5.pipeline.config import params_from_dict
from lenet5.store.prepared import read_prepared
from lenet5.training.loop import fit
p = params_from_dict(yaml.safe_load(open("params.yaml")))
net, _ = fit(*read_prepared("data/prepared"), p.lr_scale, p.train, p.distort, sys.argv[2], progress=False,
             echo=lambda m: None)
sys.stdout.write("".join(v.tobytes().hex() for v in net.params.values()))
"""


def test_every_kernel_gives_the_same_model_bytes(tmp_path):
    changes = {"train.epochs": 2, "train.threads": 2}
    models, kernels = [], []
    for i, env in enumerate(OUTSIDE):
        folder = make_project(tmp_path / f"run{i}", changes, n_train=128, n_test=32)
        done = run("train", folder, env=env)
        assert done.returncode == 0, (env, done.stderr)
        models.append((folder / "models/lenet5.npz").read_bytes())
        prov = json.loads((folder / "metrics/train.json").read_text())["provenance"]
        kernels.append((prov["blas_kernel"], prov["reproducible"]))
    assert kernels == [(KERNEL, True)] * len(OUTSIDE)
    assert all(m == models[0] for m in models[1:]), [e for e, m in zip(OUTSIDE, models) if m != models[0]]


def test_without_the_pin_the_kernels_differ(tmp_path):
    folder = make_project(tmp_path / "p", {"train.epochs": 1, "train.threads": 1}, n_train=64, n_test=16)
    out = {}
    for kernel in ("Haswell", "Sandybridge"):
        env = {**stage_env(), "OPENBLAS_CORETYPE": kernel}
        p = subprocess.run([sys.executable, "-c", UNPINNED, str(ROOT), f"{kernel}.npz"], cwd=folder, env=env, capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        out[kernel] = p.stdout
    assert out["Haswell"] != out["Sandybridge"]
