"""LeNet5: the facade that joins the pure network (``lenet5/nn``) and the parallel engine
(``lenet5/parallel``).

``LeNet5`` holds the 60,000 trainable parameters in ``params`` (name -> ndarray), runs the forward
pass, the gradient backprop and the Gauss-Newton curvature backprop of Appendix C on batches split
across ``threads`` processes, and saves/loads itself as ``.npz`` without pickle.
"""

import functools

import numpy as np

from .errors import Lenet5Error
from .nn.architecture import CLASSES, DTYPES, INPUT_SHAPE, PARAM_SHAPES, c3_mask, init_params
from .nn.architecture import num_params, outside_table_i
from .nn.bitmaps import rbf_centres
from .nn.infer import fold, infer
from .nn.network import curvature, loss_grads
from .parallel.chunks import PIECE, combine, mean_over_pieces
from .parallel.pool import Spec, map_chunks
from .store.npz import load_arrays, save_arrays


@functools.lru_cache(maxsize=None)
def _constants(dtype):
    """The fixed RBF centres ``(10, 84)`` and Table I's mask ``(16, 6, 1, 1)`` in ``dtype``."""
    return rbf_centres(dtype), c3_mask(dtype)


def _chunk(op, x, labels, params, criterion, j):
    """One process's share of a batch (means over x ``(n, 1, 32, 32)``): ``(loss, grads, y)`` for
    ``op="grads"``, ``(0.0, h, None)`` for ``"curvature"``, ``(0.0, {}, y)`` for ``"infer"``.

    Computed in pieces of at most ``PIECE`` images, so that a piece's temporaries (about 600 kB per
    image in training) stay in the CPU's cache.
    """
    centres, mask = _constants(x.dtype.name)
    if op == "infer":
        return 0.0, {}, infer(x, fold(params), centres, PIECE)
    if op == "grads":
        return mean_over_pieces(lambda xs, ls: loss_grads(xs, ls, params, centres, mask, criterion, j), x, labels)
    if op == "curvature":
        return mean_over_pieces(lambda xs, _: (0.0, curvature(xs, params, centres, mask), None), x)
    raise ValueError(f"unknown operation {op!r}")


SPEC = Spec(param_shapes=PARAM_SHAPES, sample_shape=INPUT_SHAPE, outputs=CLASSES, compute=_chunk)


class LeNet5:
    """The network of LeCun et al. 1998, with fixed +/-1 RBF centres (``nn/bitmaps.py``)."""

    def __init__(self, seed=0, dtype="float32", threads=1):
        if str(dtype) not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        self.dtype = np.dtype(dtype)
        self.params = init_params(np.random.default_rng(seed), self.dtype)
        self.rbf_centres = rbf_centres(self.dtype)
        self.threads = threads  # CPU cores to use: each batch is split across this many processes

    def _map(self, op, x, labels=None, criterion="mse", j=0.1):
        return combine(map_chunks(SPEC, op, self.params, x, labels, criterion, float(j), self.threads))

    def forward(self, x, batch_size=None):
        """RBF penalties y ``(N, 10)`` (squared distances; smaller is better) for x ``(N, 1, 32, 32)``,
        computed ``batch_size`` images at a time when given.

        Runs the lean inference pass of ``nn/infer.py`` (no caches, constants folded);
        ``nn/network.forward`` is the same function written for training.
        """
        if batch_size is None:
            return self._map("infer", x)[2]
        if len(x) == 0:
            return np.zeros((0, CLASSES), dtype=self.dtype)
        return np.concatenate([self._map("infer", x[i:i + batch_size])[2] for i in range(0, len(x), batch_size)])

    def predict(self, x, batch_size=1000):
        """Predicted digits ``(N,)``: the class with the smallest penalty."""
        return self.forward(x, batch_size).argmin(axis=1)

    def loss_and_grads(self, x, labels, criterion="mse", j=0.1):
        """Mean loss over the batch (eq. 8 or 9) and its gradient for every parameter."""
        loss, grads, _ = self.loss_grads_and_outputs(x, labels, criterion, j)
        return loss, grads

    def loss_grads_and_outputs(self, x, labels, criterion="mse", j=0.1):
        """As ``loss_and_grads``, also returning the penalties y ``(N, 10)`` (for on-the-fly error)."""
        return self._map("grads", x, np.asarray(labels), criterion, j)

    def curvature(self, x):
        """Per-parameter h_kk, averaged over the patterns of x (eqs. 23-27, Gauss-Newton)."""
        return self._map("curvature", x)[1]

    def num_params(self):
        """Trainable parameters, counting only Table I's connections in C3: 60,000."""
        return num_params(self.params)

    def save(self, path, extra=None):
        """Write the weights (and optional ``extra`` arrays) to ``path`` as ``.npz``, atomically."""
        save_arrays(path, self.params, extra)

    @classmethod
    def load(cls, path):
        """Read a checkpoint written by ``save``; refuses anything else with a one-line error."""
        params = load_arrays(path, PARAM_SHAPES, DTYPES)[0]
        if outside_table_i(params["C3.weight"]):
            raise Lenet5Error(f"{path}: not a LeNet-5 checkpoint (C3.weight has connections outside Table I)")
        return cls.from_params(params)

    @classmethod
    def from_params(cls, params):
        """A network around existing parameter arrays (all of one dtype)."""
        dtype = next(iter(params.values())).dtype
        net = cls(seed=0, dtype=dtype.name)
        net.params = {k: np.array(params[k], dtype=dtype) for k in PARAM_SHAPES}
        return net
