"""The inference pass: the forward pass of ``network.py`` with its constants folded and no caches.

Training needs every layer's input and output kept for the backward passes; inference needs only
the RBF penalties, so this pass keeps nothing and does less arithmetic per unit:

- The squash f(a) = A tanh(S a) (eq. 6) is split: the S is folded into the weights and bias that
  make ``a``, and the A into the weights of the layer that reads ``f(a)``. Each unit then costs one
  matrix product (or window sum), one bias add and one tanh, all in place.
- Each convolution and the subsampling after it are one matrix product over 2x2 windows, as in
  training (``window.py``), with the subsampling's sums, coefficient, bias and tanh done in place.
- Images go through in sub-batches (their size is decided with the rest of the batching, in
  ``lenet5/parallel/chunks.py``), so that the im2col columns stay in the CPU's cache instead of
  streaming through main memory.

Up to rounding, ``infer(x, fold(params), centres, n)`` equals ``network.forward(x, ...)[0]``; a test
checks it in float64. Layout inside is channels first, batch last, as in ``layers.py``.
"""

import numpy as np

from .layers import SQUASH_A, SQUASH_S, batch_last, im2col
from .window import window_cols, window_weights


def fold(params):
    """Weights and biases with the squash constants folded in (see the module docstring).

    Returns a dict: ``C1 (24, 36)`` and ``C3 (64, 216)`` as window matrices (``window_weights``),
    ``C5 (120, 400)``, ``F6 (84, 120)``, their biases ``*.b`` as columns (repeated per window offset
    for C1, C3), and the subsampling coefficients and biases ``S2, S4`` as ``(C, 1)`` columns.
    """
    S, A = SQUASH_S, SQUASH_A
    p = params
    f = {
        "C1": window_weights(S * p["C1.weight"]),  # the input is not squashed: no A
        "C3": window_weights((S * A) * p["C3.weight"]),
        "C5": (S * A) * p["C5.weight"].reshape(120, 400),  # (120,16,5,5) -> (120, 400)
        "F6": (S * A) * p["F6.weight"],
    }
    for name in ("C1", "C3", "C5", "F6"):
        f[name + ".b"] = (S * p[name + ".bias"])[:, None]  # (F,) -> (F, 1)
    for name in ("C1", "C3"):
        f[name + ".b"] = f[name + ".b"].repeat(4, axis=0)  # (F, 1) -> (4F, 1): one per window offset
    for name in ("S2", "S4"):
        f[name] = ((S * A) * p[name + ".coef"])[:, None]  # (C,) -> (C, 1)
        f[name + ".b"] = (S * p[name + ".bias"])[:, None]
    dtype = p["C1.weight"].dtype
    return {k: np.ascontiguousarray(v, dtype=dtype) for k, v in f.items()}


def _conv_subsample_tanh(t, w, b, coef, cb):
    """A 5x5 convolution + squash, then 2x2 subsampling + squash: ``(C, H, W, N)`` ->
    ``(F, (H-4)/2, (W-4)/2, N)``, with the window matrix w ``(4F, 36C)`` of ``window_weights``."""
    _, H, W, N = t.shape
    Ho, Wo = (H - 4) // 2, (W - 4) // 2
    cols = window_cols(t)  # (36C, Ho*Wo*N)
    F = w.shape[0] // 4
    a = w @ cols  # (4F, 36C) @ (36C, Ho*Wo*N) -> (4F, Ho*Wo*N)
    a += b
    np.tanh(a, out=a)
    a = a.reshape(F, 4, Ho * Wo * N)  # (4F, M) -> (F, 4, M): the four outputs of each window
    s = a[:, 0] + a[:, 1]
    s += a[:, 2]
    s += a[:, 3]
    s *= coef
    s += cb
    np.tanh(s, out=s)
    return s.reshape(F, Ho, Wo, N)  # (F, Ho*Wo*N) -> (F, Ho, Wo, N)


def _conv_tanh(t, w, b, k):
    """tanh(w @ im2col(t) + b): t ``(C, H, W, N)`` -> ``(F, H-k+1, W-k+1, N)``."""
    C, H, W, N = t.shape
    a = w @ im2col(t, k)  # (F, C*k*k) @ (C*k*k, Ho*Wo*N) -> (F, Ho*Wo*N)
    a += b
    np.tanh(a, out=a)
    return a.reshape(w.shape[0], H - k + 1, W - k + 1, N)  # (F, Ho*Wo*N) -> (F, Ho, Wo, N)


def _infer_block(x, f, centres, out):
    """Penalties of one sub-batch: x ``(n, 1, 32, 32)`` -> ``out`` ``(n, 10)`` (written in place)."""
    n = x.shape[0]
    t = batch_last(x)  # (n,1,32,32) -> (1,32,32,n)
    t = _conv_subsample_tanh(t, f["C1"], f["C1.b"], f["S2"], f["S2.b"])  # C1 + S2: (6, 14, 14, n)
    t = _conv_subsample_tanh(t, f["C3"], f["C3.b"], f["S4"], f["S4.b"])  # C3 + S4: (16, 5, 5, n)
    t = _conv_tanh(t, f["C5"], f["C5.b"], 5).reshape(120, n)  # (120, 1, 1, n) -> (120, n)
    t = f["F6"] @ t  # (84, n)
    t += f["F6.b"]
    np.tanh(t, out=t)
    # y_i = sum_j (A t_j - c_ij)^2 = A^2 |t|^2 - 2 A c_i . t + |c_i|^2  (eq. 7)
    out[:] = (SQUASH_A * SQUASH_A) * (t * t).sum(axis=0)[:, None]
    out -= (2.0 * SQUASH_A) * (centres @ t).T  # (10, n) -> (n, 10)
    out += (centres * centres).sum(axis=1)


def infer(x, folded, centres, sub_batch):
    """RBF penalties ``(N, 10)`` of x ``(N, 1, 32, 32)`` (already of the weights' dtype), computed
    ``sub_batch`` images at a time."""
    y = np.empty((x.shape[0], 10), dtype=folded["C1"].dtype)
    for i in range(0, x.shape[0], sub_batch):
        _infer_block(x[i:i + sub_batch], folded, centres, y[i:i + sub_batch])
    return y
