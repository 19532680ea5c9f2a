"""PyTorch peer of the NumPy LeNet-5: the same network, timed on the same synthetic workload.

Run with the separate venv made by ``benchmarks/setup_torch_venv.sh`` (PyTorch is never a
dependency of the lenet5 package, and this script never imports lenet5)::

    /tmp/torch-venv/bin/python benchmarks/torch_peer.py --batch-size 256 --dtype float32 \
        --threads 2 --images 60000

The network is the paper's LeNet-5: C1 conv 5x5 1->6, S2 (coefficient * 2x2 window sum + bias),
C3 conv 5x5 6->16 masked by Table I, S4, C5 conv 5x5 16->120, F6 linear 120->84, each followed
by the squash f(a) = 1.7159 tanh(2a/3), then a Euclidean RBF output with fixed +-1 centres. The
loss is the MSE criterion (paper eq. 8): the batch mean of the correct class's RBF output. Each
training step is forward + backward + a plain SGD update. Weights start uniform on
+-2.4 / fan_in. The data are random images shaped like MNIST with random labels: only speed is
measured. One JSON line is printed on stdout.
"""

import argparse
import json
import os
import resource
import time

import numpy as np
import torch
import torch.nn.functional as F

# Table I of the paper: the S2 maps that each C3 map reads.
C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5), (0, 1, 2, 3, 4, 5),
)


def squash(a):
    """The paper's sigmoid f(a) = 1.7159 tanh(2a/3), elementwise on any shape."""
    return 1.7159 * torch.tanh(a * (2.0 / 3.0))


def _uniform(rng, shape, fan_in, dtype):
    """Uniform on [-2.4/fan_in, 2.4/fan_in]; ``fan_in`` broadcasts against ``shape``."""
    bound = 2.4 / np.asarray(fan_in, dtype=np.float64)
    return torch.nn.Parameter(torch.from_numpy((rng.uniform(-1.0, 1.0, shape) * bound).astype(dtype)))


class LeNet5(torch.nn.Module):
    """LeNet-5 of LeCun et al. 1998; ``forward`` maps (N, 1, 32, 32) images to (N, 10) RBF outputs."""

    def __init__(self, rng, dtype):
        super().__init__()
        mask = np.zeros((16, 6, 1, 1))  # (out, in, 1, 1), broadcasts over the 5x5 kernel
        for out_map, in_maps in enumerate(C3_TABLE):
            mask[out_map, list(in_maps)] = 1.0
        c3_fan_in = mask.sum(axis=1).reshape(16) * 25  # (16,): 75, 100 or 150
        self.c1_w = _uniform(rng, (6, 1, 5, 5), 25, dtype)
        self.c1_b = _uniform(rng, (6,), 25, dtype)
        self.s2_c = _uniform(rng, (6,), 4, dtype)
        self.s2_b = _uniform(rng, (6,), 4, dtype)
        self.c3_w = _uniform(rng, (16, 6, 5, 5), c3_fan_in.reshape(16, 1, 1, 1), dtype)
        self.c3_b = _uniform(rng, (16,), c3_fan_in, dtype)
        self.s4_c = _uniform(rng, (16,), 4, dtype)
        self.s4_b = _uniform(rng, (16,), 4, dtype)
        self.c5_w = _uniform(rng, (120, 16, 5, 5), 400, dtype)
        self.c5_b = _uniform(rng, (120,), 400, dtype)
        self.f6_w = _uniform(rng, (84, 120), 120, dtype)
        self.f6_b = _uniform(rng, (84,), 120, dtype)
        self.register_buffer("c3_mask", torch.from_numpy(mask.astype(dtype)))
        centres = rng.choice(np.array([-1.0, 1.0]), size=(10, 84)).astype(dtype)
        self.register_buffer("centres", torch.from_numpy(centres))  # fixed, no grad

    @staticmethod
    def _subsample(x, coef, bias):
        """(N, C, H, W) -> (N, C, H/2, W/2): coef[c] * (2x2 window sum) + bias[c], then squash."""
        window_sum = F.avg_pool2d(x, 2) * 4.0
        coef, bias = coef.view(1, -1, 1, 1), bias.view(1, -1, 1, 1)  # (C,) -> (1, C, 1, 1)
        return squash(window_sum * coef + bias)

    def forward(self, x):
        """(N, 1, 32, 32) images -> (N, 10) squared distances to the RBF centres."""
        x = squash(F.conv2d(x, self.c1_w, self.c1_b))  # (N, 6, 28, 28)
        x = self._subsample(x, self.s2_c, self.s2_b)  # (N, 6, 14, 14)
        x = squash(F.conv2d(x, self.c3_w * self.c3_mask, self.c3_b))  # (N, 16, 10, 10)
        x = self._subsample(x, self.s4_c, self.s4_b)  # (N, 16, 5, 5)
        x = squash(F.conv2d(x, self.c5_w, self.c5_b))  # (N, 120, 1, 1)
        x = squash(F.linear(x.flatten(1), self.f6_w, self.f6_b))  # (N, 120, 1, 1) -> (N, 120) -> (N, 84)
        diff = x.unsqueeze(1) - self.centres.unsqueeze(0)  # (N, 1, 84) - (1, 10, 84) -> (N, 10, 84)
        return (diff * diff).sum(dim=2)  # (N, 10)


def mse_loss(y, labels):
    """Paper eq. 8: mean over the batch of y[n, labels[n]]; y (N, 10), labels (N,) int64."""
    return y.gather(1, labels.view(-1, 1)).mean()  # (N,) -> (N, 1)


def train_epoch(model, opt, images, labels, batch_size, gen):
    """One shuffled pass of forward + backward + SGD step over (N, 1, 32, 32) images.

    Returns (wall seconds, process CPU seconds). On a quiet machine CPU / wall is close to the
    thread count; much less means the cores were busy with other jobs and the wall time is inflated.
    """
    start, cpu = time.perf_counter(), time.process_time()
    order = torch.randperm(images.shape[0], generator=gen)
    for i in range(0, images.shape[0], batch_size):
        idx = order[i:i + batch_size]
        opt.zero_grad(set_to_none=True)
        loss = mse_loss(model(images[idx]), labels[idx])
        loss.backward()
        opt.step()
    return time.perf_counter() - start, time.process_time() - cpu


@torch.no_grad()
def infer(model, images, batch_size):
    """Forward-only pass over (N, 1, 32, 32) images, predicting argmin of (N, 10).

    Returns (wall seconds, process CPU seconds).
    """
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(0, images.shape[0], batch_size):
        model(images[i:i + batch_size]).argmin(dim=1)
    return time.perf_counter() - start, time.process_time() - cpu


def parse_args(argv=None):
    """Command-line options of the benchmark."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=256, help="training mini-batch size")
    p.add_argument("--infer-batch-size", type=int, default=1000, help="inference batch size")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--images", type=int, default=60000, help="synthetic images per epoch")
    p.add_argument("--repeat", type=int, default=1,
                   help="time K epochs and K inference passes, keep the best of each")
    p.add_argument("--lr", type=float, default=1e-3, help="SGD learning rate")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for name in ("batch_size", "infer_batch_size", "threads", "images", "repeat"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def main(argv=None):
    """Build the data and model, time training and inference, print one JSON line."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    dtype = getattr(np, args.dtype)
    # MNIST-shaped (N, 1, 32, 32) in the paper's input range [-0.1, 1.175], random labels (N,)
    images = rng.uniform(-0.1, 1.175, (args.images, 1, 32, 32)).astype(dtype)
    labels = rng.integers(0, 10, args.images)
    images, labels = torch.from_numpy(images), torch.from_numpy(labels).long()
    model = LeNet5(rng, dtype)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)

    warm = min(args.batch_size, args.images)  # one warm-up batch pass, not timed
    train_epoch(model, opt, images[:warm], labels[:warm], args.batch_size, gen)
    load_before = os.getloadavg()[0]
    epochs = [train_epoch(model, opt, images, labels, args.batch_size, gen) for _ in range(args.repeat)]
    epoch_s, epoch_cpu = min(epochs)  # best wall time of K epochs, with its CPU time
    model.eval()
    infer(model, images[:min(args.infer_batch_size, args.images)], args.infer_batch_size)  # warm-up
    infer_s, infer_cpu = min(infer(model, images, args.infer_batch_size) for _ in range(args.repeat))

    print(json.dumps({
        "framework": "pytorch",
        "torch_version": torch.__version__,
        "train_images_per_s": round(args.images / epoch_s, 1),
        "epoch_seconds": round(epoch_s, 3),
        "infer_images_per_s": round(args.images / infer_s, 1),
        "infer_batch_size": args.infer_batch_size,
        "dtype": args.dtype,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "images": args.images,
        "repeat": args.repeat,
        "epoch_cpu_seconds": round(epoch_cpu, 3),
        "infer_seconds": round(infer_s, 3),
        "infer_cpu_seconds": round(infer_cpu, 3),
        "loadavg_1m_before": round(load_before, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


if __name__ == "__main__":
    main()
