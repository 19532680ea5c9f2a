"""LeNet5: the facade that joins the pure network (``lenet5/nn``) and the parallel engine
(``lenet5/parallel``).

``LeNet5`` holds the 60,000 trainable parameters in ``params`` (name -> ndarray), runs the forward
pass, the gradient backprop and the Gauss-Newton curvature backprop of Appendix C on batches split
across ``threads`` processes, and saves/loads itself as ``.npz`` without pickle. A gradient call
may also be given the distortions of its images (``nn/warp.py``): each process then resamples the
images of its own chunk before computing on them, or, when the previous call announced the batch,
the worker processes resampled all of it while this process finished that call.
"""

import functools

import numpy as np

from .errors import Lenet5Error
from .nn.architecture import CLASSES, DTYPES, INPUT_SHAPE, PARAM_SHAPES, c3_mask, init_params
from .nn.architecture import num_params, outside_table_i
from .nn.bitmaps import rbf_centres
from .nn.infer import fold, infer
from .nn.network import curvature, loss_grads
from .nn.warp import warp_except
from .parallel.chunks import PIECE, combine, mean_over_pieces
from .parallel.pool import map_chunks
from .parallel.spec import Spec
from .store.npz import load_arrays, save_arrays


@functools.lru_cache(maxsize=None)
def _constants(dtype):
    """The fixed RBF centres ``(10, 84)`` and Table I's mask ``(16, 6, 1, 1)`` in ``dtype``."""
    return rbf_centres(dtype), c3_mask(dtype)


# per image, the distortion that comes with it: the output-to-input matrix (2, 3) row by row, then
# 1.0 to keep the image as it is (0.0 to resample it)
WARP_VALUES = 7


def _pack_warp(mats, keep):
    """``(N, 2, 3)`` matrices and ``(N,)`` bools or None -> ``(N, WARP_VALUES)`` float64 rows."""
    n = len(mats)
    rows = np.zeros((n, WARP_VALUES))
    rows[:, :6] = np.asarray(mats, dtype=np.float64).reshape(n, 6)  # (N, 2, 3) -> (N, 6)
    if keep is not None:
        rows[:, 6] = keep
    return rows


def _unpack_warp(x, rows):
    """x ``(n, 1, 32, 32)`` resampled as ``rows`` ``(n, WARP_VALUES)`` say (``warp_except``); also
    the pool's ``Spec.prepare``, for batches resampled ahead by the workers.

    The rows travel in the weights' dtype, which is then the images' dtype too (``LeNet5._map``);
    the warp computes coordinates in that dtype, so a float32 copy of a float64 matrix resamples to
    the same bytes.
    """
    return warp_except(x, rows[:, :6].reshape(-1, 2, 3), rows[:, 6] != 0)  # (n, 6) -> (n, 2, 3)


def _chunk(op, x, labels, params, criterion, j, warp=None):
    """One process's share of a batch (means over x ``(n, 1, 32, 32)``): ``(loss, grads, y)`` for
    ``op="grads"``, ``(0.0, h, None)`` for ``"curvature"``, ``(0.0, {}, y)`` for ``"infer"``.
    ``warp`` (None, or ``(n, WARP_VALUES)`` rows of ``_pack_warp``) distorts x first.

    Computed in pieces of at most ``PIECE`` images, so that a piece's temporaries (about 600 kB per
    image in training) stay in the CPU's cache.
    """
    centres, mask = _constants(x.dtype.name)
    if warp is not None:
        x = _unpack_warp(x, warp)
    if op == "infer":
        return 0.0, {}, infer(x, fold(params), centres, PIECE)
    if op == "grads":
        return mean_over_pieces(lambda xs, ls: loss_grads(xs, ls, params, centres, mask, criterion, j), x, labels)
    if op == "curvature":
        return mean_over_pieces(lambda xs, _: (0.0, curvature(xs, params, centres, mask), None), x)
    raise ValueError(f"unknown operation {op!r}")


SPEC = Spec(param_shapes=PARAM_SHAPES, sample_shape=INPUT_SHAPE, outputs=CLASSES, compute=_chunk,
            extra=WARP_VALUES, prepare=_unpack_warp)


class LeNet5:
    """The network of LeCun et al. 1998, with fixed +/-1 RBF centres (``nn/bitmaps.py``)."""

    def __init__(self, seed=0, dtype="float32", threads=1):
        if str(dtype) not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        self.dtype = np.dtype(dtype)
        self.params = init_params(np.random.default_rng(seed), self.dtype)
        self.rbf_centres = rbf_centres(self.dtype)
        self.threads = threads  # CPU cores to use: each batch is split across this many processes
        self._ahead = None  # (images, warp, packed rows) of the batch ``while_waiting`` announced

    def _map(self, op, x, labels=None, criterion="mse", j=0.1, warp=None, while_waiting=None):
        extra, ahead, self._ahead = None, self._ahead, None
        if warp is not None and warp[0] is not None:
            x = np.asarray(x)
            if x.dtype == self.dtype:  # resampled by the processes: packed once, when announced
                extra = ahead[2] if ahead is not None and ahead[0] is x and ahead[1] is warp else _pack_warp(*warp)
            else:  # resampled here, in the images' own dtype, before they are converted
                x = warp_except(x, *warp)
        announce = None if while_waiting is None else (lambda: self._announce(while_waiting()))
        return combine(map_chunks(SPEC, op, self.params, x, labels, criterion, float(j), self.threads, extra,
                                  announce))

    def _announce(self, upcoming):
        """What the workers may prepare from ``while_waiting``'s return value (the next call's
        ``(images, warp)`` or None): ``(images, packed rows)`` for ``map_chunks``, or None."""
        if upcoming is None:
            return None
        x, warp = upcoming
        if warp is None or warp[0] is None or not isinstance(x, np.ndarray) or x.dtype != self.dtype:
            return None
        self._ahead = (x, warp, _pack_warp(*warp))
        return x, self._ahead[2]

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

    def loss_grads_and_outputs(self, x, labels, criterion="mse", j=0.1, warp=None, while_waiting=None):
        """As ``loss_and_grads``, also returning the penalties y ``(N, 10)`` (for on-the-fly error).

        ``warp``: None, or the distortions of x's images, ``(mats (N, 2, 3) or None, keep (N,) bools or
        None)`` as ``training/batches.draw`` gives them: the gradient is then that of
        ``warp_except(x, mats, keep)`` (``nn/warp.py``, in x's dtype): each process resamples its
        own images when x has the weights' dtype, else x is resampled here first.
        ``while_waiting``: None, or a function of no arguments called once, when this process has
        computed its share and the other processes may still be computing theirs (the training loop
        draws the next batch there). It may return the next call's ``(x, warp)``: when x has the
        weights' dtype and the next call runs on the same worker processes, they then resample those
        images while this process finishes the call, and the next call given these same objects
        (unchanged) starts from them: the same bytes, sooner.
        """
        return self._map("grads", x, np.asarray(labels), criterion, j, warp, while_waiting)

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
