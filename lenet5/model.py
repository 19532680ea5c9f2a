"""LeNet-5 as published: C1-S2-C3-S4-C5-F6 and a fixed Euclidean RBF output (§II.B).

``LeNet5`` holds the 60,000 trainable parameters in ``params`` (name -> ndarray), runs the
forward pass, the gradient backprop and the Gauss-Newton curvature backprop of Appendix C, and
saves/loads itself as ``.npz`` without pickle. The math lives in ``layers.py``; this file wires it.
"""

import numpy as np

from . import layers as L
from . import workers
from .bitmaps import rbf_centres
from .checkpoint import load_arrays, save_arrays
from .errors import Lenet5Error
from .infer import fold, infer
from .losses import loss_and_dy
from .parallel import combine

# Images per piece of a process's share of a batch (``LeNet5.chunk``). Measured on one core, a
# gradient over 256 images ran at 7,900 images/s in one piece and 9,700 in pieces of 64.
PIECE = 64

# Table I: for each C3 map, the S2 maps it reads.
TABLE_I = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)

PARAM_SHAPES = {
    "C1.weight": (6, 1, 5, 5), "C1.bias": (6,),
    "S2.coef": (6,), "S2.bias": (6,),
    "C3.weight": (16, 6, 5, 5), "C3.bias": (16,),
    "S4.coef": (16,), "S4.bias": (16,),
    "C5.weight": (120, 16, 5, 5), "C5.bias": (120,),
    "F6.weight": (84, 120), "F6.bias": (84,),
}
DTYPES = ("float32", "float64")


def c3_mask(dtype="float64"):
    """``(16, 6, 1, 1)`` 0/1 mask of Table I's connections, broadcastable over C3.weight."""
    m = np.zeros((16, 6, 1, 1), dtype=dtype)
    for out_map, ins in enumerate(TABLE_I):
        m[out_map, list(ins)] = 1
    return m


def fan_in(name):
    """Inputs per unit for the init rule of Appendix A (per C3 map: 25 x its Table I inputs)."""
    if name.startswith("C3"):
        return np.array([25 * len(ins) for ins in TABLE_I], dtype=float)[:, None, None, None]  # (16,1,1,1)
    return {"C1": 25, "S2": 4, "S4": 4, "C5": 400, "F6": 120}[name.split(".")[0]]


def init_params(rng, dtype="float64"):
    """Weights and S-layer coefficients uniform in [-2.4/Fi, 2.4/Fi] (App. A).

    Biases start at 0: the paper does not say how it set them, and 0 keeps every unit's initial
    weighted sum centred in the squash's linear range.
    """
    params = {}
    for name, shape in PARAM_SHAPES.items():
        if name.endswith(".bias"):
            params[name] = np.zeros(shape, dtype=dtype)
        else:
            r = 2.4 / fan_in(name)
            params[name] = (rng.uniform(-1.0, 1.0, size=shape) * r).astype(dtype)
    params["C3.weight"] *= c3_mask(dtype)
    return params


class LeNet5:
    """The network of LeCun et al. 1998, with fixed +/-1 RBF centres (``bitmaps.py``)."""

    def __init__(self, seed=0, dtype="float32", threads=1):
        if str(dtype) not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        self.dtype = np.dtype(dtype)
        self.params = init_params(np.random.default_rng(seed), self.dtype)
        self.rbf_centres = rbf_centres(self.dtype)
        self.mask = c3_mask(self.dtype)
        self.threads = threads  # CPU cores to use: each batch is split across this many processes (workers.py)

    # ------------------------------------------------------------ forward
    def _forward(self, x):
        """x ``(N, 1, 32, 32)`` -> y ``(N, 10)`` and the caches needed by the backward passes."""
        p, n = self.params, x.shape[0]
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 4 or x.shape[1:] != (1, 32, 32):
            raise ValueError(f"input must have shape (N, 1, 32, 32), got {x.shape}")
        c = {}
        h = np.ascontiguousarray(x.reshape(n, 32 * 32).T).reshape(1, 32, 32, n)  # (N,1,32,32) -> (1,32,32,N)
        a, c["C1"] = L.conv_forward(h, p["C1.weight"], p["C1.bias"])  # (6,28,28,N)
        h, c["C1f"] = L.squash_forward(a)
        a, c["S2"] = L.subsample_forward(h, p["S2.coef"], p["S2.bias"])  # (6,14,14,N)
        h, c["S2f"] = L.squash_forward(a)
        a, c["C3"] = L.conv_forward(h, p["C3.weight"], p["C3.bias"])  # (16,10,10,N)
        h, c["C3f"] = L.squash_forward(a)
        a, c["S4"] = L.subsample_forward(h, p["S4.coef"], p["S4.bias"])  # (16,5,5,N)
        h, c["S4f"] = L.squash_forward(a)
        a, c["C5"] = L.conv_forward(h, p["C5.weight"], p["C5.bias"])  # (120,1,1,N)
        h, c["C5f"] = L.squash_forward(a.reshape(120, n))  # (120,1,1,N) -> (120,N)
        a, c["F6"] = L.full_forward(h, p["F6.weight"], p["F6.bias"])  # (84,N)
        h, c["F6f"] = L.squash_forward(a)
        y, c["RBF"] = L.rbf_forward(h, self.rbf_centres)  # (N,10)
        return y, c

    def forward(self, x):
        """RBF penalties y ``(N, 10)`` (squared distances; smaller is better) for x ``(N, 1, 32, 32)``.

        Runs the lean inference pass of ``infer.py`` (no caches, constants folded); ``_forward``
        is the same function written for training.
        """
        return combine(workers.map_chunks(self, "infer", x))[2]

    def predict(self, x, batch_size=1000):
        """Predicted digits ``(N,)``: the class with the smallest penalty."""
        return np.concatenate([self.forward(x[i:i + batch_size]).argmin(axis=1)
                               for i in range(0, len(x), batch_size)])

    # ------------------------------------------------------------ backward passes
    def _backprop(self, d, c, curvature=False):
        """Shared chain for gradients (eq. 19) and Gauss-Newton curvatures (eqs. 25-27).

        ``d`` is dE/dx (or d2E/dx2) at F6's output ``(84, N)``; returns a dict keyed like ``params``.
        """
        conv = L.conv_curvature if curvature else L.conv_backward
        sub = L.subsample_curvature if curvature else L.subsample_backward
        full = L.full_curvature if curvature else L.full_backward
        sq = L.squash_curvature if curvature else L.squash_backward
        g, n = {}, d.shape[1]
        d = sq(d, c["F6f"])
        d, g["F6.weight"], g["F6.bias"] = full(d, c["F6"])
        d = sq(d, c["C5f"]).reshape(120, 1, 1, n)  # (120,N) -> (120,1,1,N)
        d, g["C5.weight"], g["C5.bias"] = conv(d, c["C5"])
        d = sq(d, c["S4f"])
        d, g["S4.coef"], g["S4.bias"] = sub(d, c["S4"])
        d = sq(d, c["C3f"])
        d, g["C3.weight"], g["C3.bias"] = conv(d, c["C3"])
        g["C3.weight"] *= self.mask  # connections absent from Table I have no gradient
        d = sq(d, c["S2f"])
        d, g["S2.coef"], g["S2.bias"] = sub(d, c["S2"])
        d = sq(d, c["C1f"])
        _, g["C1.weight"], g["C1.bias"] = conv(d, c["C1"], need_dx=False)
        return {k: g[k] for k in PARAM_SHAPES}

    def loss_and_grads(self, x, labels, criterion="mse", j=0.1):
        """Mean loss over the batch (eq. 8 or 9) and its gradient for every parameter."""
        loss, grads, _ = self.loss_grads_and_outputs(x, labels, criterion, j)
        return loss, grads

    def loss_grads_and_outputs(self, x, labels, criterion="mse", j=0.1):
        """As ``loss_and_grads``, also returning the penalties y ``(N, 10)`` (for on-the-fly error)."""
        return combine(workers.map_chunks(self, "grads", x, np.asarray(labels), criterion, float(j)))

    def curvature(self, x):
        """Per-parameter h_kk, averaged over the patterns of x (eqs. 23-27, Gauss-Newton).

        At the output, d2E/dx_j^2 = 2 for every F6 unit: the second derivative of the correct
        class's penalty y_D = sum_j (x_j - w_Dj)^2 (eq. 8's term, also used for eq. 9's criterion,
        whose competitive term can make the exact value negative).
        """
        return combine(workers.map_chunks(self, "curvature", x))[1]

    def chunk(self, op, x, labels=None, criterion="mse", j=0.1):
        """One process's share of a batch: ``(loss, grads, y)`` for ``op="grads"``, ``(0.0, h, None)``
        for ``op="curvature"`` (means over x ``(n, 1, 32, 32)``), ``(0.0, {}, y)`` for ``op="infer"``.

        Computed in consecutive pieces of at most ``PIECE`` images, so that a piece's temporaries
        (about 600 kB per image) stay in the CPU's cache; the piece means are combined in order.
        """
        n = len(x)
        if op == "infer":  # infer.py cuts its own sub-batches
            return 0.0, {}, infer(x, fold(self.params), self.rbf_centres)
        if n <= PIECE:
            return self._piece(op, x, labels, criterion, j)
        edges = np.linspace(0, n, -(-n // PIECE) + 1).round().astype(int)
        return combine([((b - a) / n, self._piece(op, x[a:b], None if labels is None else labels[a:b], criterion, j))
                        for a, b in zip(edges[:-1].tolist(), edges[1:].tolist())])

    def _piece(self, op, x, labels, criterion, j):
        y, c = self._forward(x)
        if op == "grads":
            loss, dy = loss_and_dy(y, labels, criterion, j)
            d = L.rbf_backward(dy.astype(self.dtype, copy=False), c["RBF"])
            return loss, self._backprop(d, c), y
        d2 = np.full((84, x.shape[0]), 2.0 / x.shape[0], dtype=self.dtype)
        return 0.0, self._backprop(d2, c, curvature=True), None

    # ------------------------------------------------------------ persistence
    def num_params(self):
        """Trainable parameters, counting only Table I's connections in C3: 60,000."""
        n = sum(v.size for k, v in self.params.items() if k != "C3.weight")
        return int(n + self.mask.sum() * 25)

    def save(self, path, extra=None):
        """Write the weights (and optional ``extra`` arrays) to ``path`` as ``.npz``, atomically."""
        save_arrays(path, self.params, extra)

    @classmethod
    def load(cls, path):
        """Read a checkpoint written by ``save``; refuses anything else with a one-line error."""
        params = load_arrays(path, PARAM_SHAPES, DTYPES)[0]
        if np.any(params["C3.weight"] * (1 - c3_mask()) != 0):
            raise Lenet5Error(f"{path}: not a LeNet-5 checkpoint (C3.weight has connections outside Table I)")
        return cls.from_params(params)

    @classmethod
    def from_params(cls, params):
        """A network around existing parameter arrays (all of one dtype)."""
        dtype = next(iter(params.values())).dtype
        net = cls(seed=0, dtype=dtype.name)
        net.params = {k: np.array(params[k], dtype=dtype) for k in PARAM_SHAPES}
        return net
