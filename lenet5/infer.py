"""The inference pass: the forward pass of ``model.py`` with its constants folded and no caches.

Training needs every layer's input and output kept for the backward passes; inference needs only
the RBF penalties, so this pass keeps nothing and does less arithmetic per unit:

- The squash f(a) = A tanh(S a) (eq. 6) is split: the S is folded into the weights and bias that
  make ``a``, and the A into the weights of the layer that reads ``f(a)``. Each unit then costs one
  matrix product (or window sum), one bias add and one tanh, all in place.
- Images go through in sub-batches of ``SUB_BATCH``, so that the im2col columns (about 140 kB per
  image) stay in the CPU's cache instead of streaming through main memory.

Up to rounding, ``infer(x, fold(params), centres)`` equals ``LeNet5._forward(x)[0]``; a test
checks it in float64. Layout inside is channels first, batch last, as in ``layers.py``.
"""

import numpy as np

from .layers import SQUASH_A, SQUASH_S, im2col

SUB_BATCH = 64


def fold(params):
    """Weights and biases with the squash constants folded in (see the module docstring).

    Returns a dict: ``C1, C3, C5`` as ``(F, C*k*k)`` matrices, ``F6`` ``(84, 120)``, their biases
    ``*.b`` and the subsampling coefficients and biases ``S2, S4`` as ``(C, 1, 1, 1)`` columns.
    """
    S, A = SQUASH_S, SQUASH_A
    p = params
    f = {
        "C1": S * p["C1.weight"].reshape(6, 25),  # (6,1,5,5) -> (6, 25); the input is not squashed
        "C3": (S * A) * p["C3.weight"].reshape(16, 150),  # (16,6,5,5) -> (16, 150)
        "C5": (S * A) * p["C5.weight"].reshape(120, 400),  # (120,16,5,5) -> (120, 400)
        "F6": (S * A) * p["F6.weight"],
    }
    for name in ("C1", "C3", "C5", "F6"):
        f[name + ".b"] = (S * p[name + ".bias"])[:, None]  # (F,) -> (F, 1)
    for name in ("S2", "S4"):
        f[name] = ((S * A) * p[name + ".coef"])[:, None, None, None]  # (C,) -> (C, 1, 1, 1)
        f[name + ".b"] = (S * p[name + ".bias"])[:, None, None, None]
    dtype = p["C1.weight"].dtype
    return {k: np.ascontiguousarray(v, dtype=dtype) for k, v in f.items()}


def _conv_tanh(t, w, b, k):
    """tanh(w @ im2col(t) + b): t ``(C, H, W, N)`` -> ``(F, H-k+1, W-k+1, N)``."""
    C, H, W, N = t.shape
    a = w @ im2col(t, k)  # (F, C*k*k) @ (C*k*k, Ho*Wo*N) -> (F, Ho*Wo*N)
    a += b
    np.tanh(a, out=a)
    return a.reshape(w.shape[0], H - k + 1, W - k + 1, N)  # (F, Ho*Wo*N) -> (F, Ho, Wo, N)


def _subsample_tanh(t, coef, b):
    """tanh(coef * (2x2 window sums, stride 2) + b): ``(C, H, W, N)`` -> ``(C, H/2, W/2, N)``."""
    C, H, W, N = t.shape
    r = t.reshape(C, H // 2, 2, W // 2, 2, N)  # (C, H/2, 2, W/2, 2, N): the windows
    s = r[:, :, 0, :, 0] + r[:, :, 0, :, 1]  # (C, H/2, W/2, N)
    s += r[:, :, 1, :, 0]
    s += r[:, :, 1, :, 1]
    s *= coef
    s += b
    return np.tanh(s, out=s)


def _infer_block(x, f, centres, out):
    """Penalties of one sub-batch: x ``(n, 1, 32, 32)`` -> ``out`` ``(n, 10)`` (written in place)."""
    n = x.shape[0]
    t = np.ascontiguousarray(x.reshape(n, 1024).T).reshape(1, 32, 32, n)  # (n,1,32,32) -> (1,32,32,n)
    t = _conv_tanh(t, f["C1"], f["C1.b"], 5)  # (6, 28, 28, n)
    t = _subsample_tanh(t, f["S2"], f["S2.b"])  # (6, 14, 14, n)
    t = _conv_tanh(t, f["C3"], f["C3.b"], 5)  # (16, 10, 10, n)
    t = _subsample_tanh(t, f["S4"], f["S4.b"])  # (16, 5, 5, n)
    t = _conv_tanh(t, f["C5"], f["C5.b"], 5).reshape(120, n)  # (120, 1, 1, n) -> (120, n)
    t = f["F6"] @ t  # (84, n)
    t += f["F6.b"]
    np.tanh(t, out=t)
    # y_i = sum_j (A t_j - c_ij)^2 = A^2 |t|^2 - 2 A c_i . t + |c_i|^2  (eq. 7)
    out[:] = (SQUASH_A * SQUASH_A) * (t * t).sum(axis=0)[:, None]
    out -= (2.0 * SQUASH_A) * (centres @ t).T  # (10, n) -> (n, 10)
    out += (centres * centres).sum(axis=1)


def infer(x, folded, centres, sub_batch=SUB_BATCH):
    """RBF penalties ``(N, 10)`` of x ``(N, 1, 32, 32)`` (already of the weights' dtype)."""
    y = np.empty((x.shape[0], 10), dtype=folded["C1"].dtype)
    for i in range(0, x.shape[0], sub_batch):
        _infer_block(x[i:i + sub_batch], folded, centres, y[i:i + sub_batch])
    return y
