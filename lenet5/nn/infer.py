"""The inference pass: the forward pass of ``network.py`` with its constants folded and no caches.

Training needs every layer's input and output kept for the backward passes; inference needs only
the RBF penalties, so this pass keeps nothing and does less arithmetic per unit:

- The squash f(a) = A tanh(S a) (eq. 6) is split: the S is folded into the weights and bias that
  make ``a``, and the A into the weights of the layer that reads ``f(a)``. Each unit then costs one
  matrix product (or window sum), one bias add and one tanh, all in place.
- Each convolution and the subsampling after it are one matrix product over 2x2 windows: the four
  outputs of a window (its offsets (0,0), (0,1), (1,0), (1,1)) are four rows of the weight matrix,
  reading one 6x6 input patch per window at stride 2. Against one 5x5 patch per output, that is
  2.8x smaller im2col columns, a matrix product with 4x as many rows (which BLAS runs far better:
  C1 alone has 6), and a subsampling that adds four contiguous blocks; it costs 1.44x the
  multiply-adds (the zeros around each 5x5 kernel in its 6x6 frame). Measured on one core, in
  sub-batches of 64: 37,000-39,000 images/s against 24,000-27,000 for one output per patch.
- Images go through in sub-batches (their size is decided with the rest of the batching, in
  ``lenet5/parallel/chunks.py``), so that the im2col columns stay in the CPU's cache instead of
  streaming through main memory.

Up to rounding, ``infer(x, fold(params), centres, n)`` equals ``network.forward(x, ...)[0]``; a test
checks it in float64. Layout inside is channels first, batch last, as in ``layers.py``.
"""

import numpy as np

from .layers import SQUASH_A, SQUASH_S, im2col, windows


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


def window_weights(w):
    """``(F, C, 5, 5)`` kernels -> ``(4F, 36C)``: row (f, dr, ds) is kernel f placed at offset
    (dr, ds) in a 6x6 frame, so that one product with a 6x6 patch gives that window output."""
    F, C, k, _ = w.shape
    out = np.zeros((F, 2, 2, C, k + 1, k + 1), dtype=w.dtype)
    for dr in (0, 1):
        for ds in (0, 1):
            out[:, dr, ds, :, dr:dr + k, ds:ds + k] = w
    return out.reshape(4 * F, C * (k + 1) ** 2)  # (F,2,2,C,6,6) -> (4F, 36C)


def _window_cols(t):
    """The 6x6 patches at stride 2 of t ``(C, H, W, N)`` as columns ``(36C, Ho*Wo*N)``,
    Ho = (H-4)/2: patch (i, j) covers the 2x2 window (i, j) of a 5x5 convolution's output."""
    C, H, W, N = t.shape
    Ho, Wo = (H - 4) // 2, (W - 4) // 2
    cols = np.empty((C, 6, 6, Ho, Wo, N), dtype=t.dtype)
    cols[...] = windows(t, 6, 2)  # one copy of every patch (was 36 slice copies)
    return cols.reshape(C * 36, Ho * Wo * N), Ho, Wo  # (C,6,6,Ho,Wo,N) -> (36C, Ho*Wo*N)


def _conv_subsample_tanh(t, w, b, coef, cb):
    """A 5x5 convolution + squash, then 2x2 subsampling + squash: ``(C, H, W, N)`` ->
    ``(F, (H-4)/2, (W-4)/2, N)``, with the window matrix w ``(4F, 36C)`` of ``window_weights``."""
    cols, Ho, Wo = _window_cols(t)
    F = w.shape[0] // 4
    a = w @ cols  # (4F, 36C) @ (36C, Ho*Wo*N) -> (4F, Ho*Wo*N)
    a += b
    np.tanh(a, out=a)
    a = a.reshape(F, 4, Ho * Wo * t.shape[3])  # (4F, M) -> (F, 4, M): the four outputs of each window
    s = a[:, 0] + a[:, 1]
    s += a[:, 2]
    s += a[:, 3]
    s *= coef
    s += cb
    np.tanh(s, out=s)
    return s.reshape(F, Ho, Wo, t.shape[3])  # (F, Ho*Wo*N) -> (F, Ho, Wo, N)


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
    t = np.ascontiguousarray(x.reshape(n, 1024).T).reshape(1, 32, 32, n)  # (n,1,32,32) -> (1,32,32,n)
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
