"""SHA-256 of what a short default training run produces: the weights and the log's numbers.

Trains ``fit`` at the params.yaml defaults (batch 32, distortions, curvature, map criterion) for
two epochs on 4,096 random MNIST-shaped images (1,000 test images), or on the first 4,096 and
1,000 digits of MNIST with ``--mnist DIR`` (a folder of the four IDX files, decompressed), once per
``threads`` value, and prints one line per value. Run it before and after a change that must not
move any number: the lines must be identical.
Usage: ``python benchmarks/bitcheck.py [--mnist DIR] [THREADS ...]`` (default 1 2 3).
"""

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lenet5.pipeline.config import params_from_dict  # noqa: E402
from lenet5.training.loop import fit  # noqa: E402
from lenet5.data.idx import load_mnist_pair  # noqa: E402
from lenet5.data.preprocess import normalize  # noqa: E402

MNIST = None  # a folder of MNIST's four decompressed IDX files (--mnist DIR), else random images


def digest(threads, n_train=4096, n_test=1000, epochs=2):
    """(hex SHA-256 over the weights and each log row's numbers but its seconds, last loss, last test error)."""
    d = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    d["train"].update(epochs=epochs, threads=threads)
    p = params_from_dict(d)
    data = []
    if MNIST:  # the first digits of the real training and test sets
        for name, n in (("train", n_train), ("t10k", n_test)):
            x, y = load_mnist_pair(MNIST / f"{name}-images-idx3-ubyte", MNIST / f"{name}-labels-idx1-ubyte")
            data += [normalize(x[:n]), y[:n].astype(np.int64)]
    else:
        rng = np.random.default_rng(0)
        for n in (n_train, n_test):
            data.append(rng.uniform(-0.1, 1.175, size=(n, 1, 32, 32)).astype(np.float32))  # (N, 1, 32, 32)
            data.append(rng.integers(0, 10, size=n))
    with tempfile.TemporaryDirectory() as tmp:
        net, rows = fit(*data, p.lr_scale, p.train, p.distort, Path(tmp) / "ckpt.npz",
                        progress=False, echo=lambda *_: None)
    h = hashlib.sha256()
    for k in sorted(net.params):
        h.update(k.encode() + np.ascontiguousarray(net.params[k]).tobytes())
    h.update(json.dumps([{k: v for k, v in r.items() if k != "seconds"} for r in rows]).encode())
    return h.hexdigest(), rows[-1]["train_loss"], rows[-1]["test_error"]


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--mnist"]:
        MNIST, args = Path(args[1]), args[2:]
    for t in [int(a) for a in args] or [1, 2, 3]:
        h, loss, err = digest(t)
        print(f"threads {t}: {h}  (loss {loss!r}, test error {err!r})", flush=True)
