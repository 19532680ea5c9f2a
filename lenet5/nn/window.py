"""A 5x5 convolution and the 2x2 subsampling after it, computed over the subsampling's windows.

C1 feeds S2 and C3 feeds S4: each S unit sums a 2x2 window of squashed C outputs (§II.B). Instead of
one 5x5 patch per C output, each window reads one 6x6 patch (stride 2) and one matrix product gives
its four outputs: row (f, dr, ds) of the window matrix is kernel f placed at offset (dr, ds) in a 6x6
frame of zeros. Against ``layers.conv_forward``, the im2col columns are 2.8x smaller (36 numbers per
window instead of 4 x 25), the product has 4x as many rows (C1 alone has 6, which BLAS runs poorly),
and the subsampling adds four contiguous blocks instead of gathering strided pairs. It costs 1.44x
the multiply-adds (the frame's zeros), and its sums run in another order than the patch-per-output
form, so the two agree up to rounding (a test checks it in float64).

Layout, as in ``layers.py``, channels first and batch last. A windowed C layer's output is
``(4F, M)`` with ``M = Ho*Wo*N``: rows (f, dr, ds), columns (window row, window column, image); its
squash is elementwise, so it keeps that layout, and ``subsample_forward`` turns it into the S map
``(F, Ho, Wo, N)``. Gradients and curvatures (eqs. 19, 25-27) follow the same keys as ``layers``.
"""

import functools

import numpy as np

from .layers import windows


def _frame(w):
    """``window_weights``'s construction, written out: ``(F, C, 5, 5)`` -> ``(4F, 36C)`` (any dtype)."""
    F, C, k, _ = w.shape
    out = np.zeros((F, 2, 2, C, k + 1, k + 1), dtype=w.dtype)
    for dr in (0, 1):
        for ds in (0, 1):
            out[:, dr, ds, :, dr:dr + k, ds:ds + k] = w
    out = out.reshape(F, 2, 2, C, 3, 2, 3, 2)  # (F,2,2,C,6,6) -> (F,2,2,C,u,a,v,b), row 2u+a, column 2v+b
    return out.transpose(0, 1, 2, 3, 5, 7, 4, 6).reshape(4 * F, 36 * C)  # -> (F,2,2,C,a,b,u,v) -> (4F, 36C)


@functools.lru_cache(maxsize=None)
def _frame_index(F, C):
    """Where ``window_weights`` and ``fold_window_weights`` read, for F kernels of C channels.

    Returns ``(take, place)``: ``take`` ``(4F, 36C)`` indexes the kernels flattened with one zero
    appended (index F*C*25 = the frame's zeros); ``place`` ``(4, F, C, 5, 5)`` gives, per window
    offset (0,0), (0,1), (1,0), (1,1), where each kernel entry lies in the window matrix's
    transpose ``(36C, 4F)`` flattened.
    """
    size = F * C * 25
    kernels = np.arange(1, size + 1).reshape(F, C, 5, 5)  # (F*C*25,) -> (F, C, 5, 5), 1-based: the zeros stand out
    take = _frame(kernels) - 1  # (4F, 36C)
    take[take < 0] = size
    rows, cols = np.nonzero(take < size)  # every entry of every offset, once
    place = np.empty((4, size), dtype=np.intp)
    place[rows % 4, take[rows, cols]] = cols * (4 * F) + rows  # row (f, dr, ds): offset = row % 4
    place = place.reshape(4, F, C, 5, 5)  # (4, F*C*25) -> (4, F, C, 5, 5)
    take.setflags(write=False)
    place.setflags(write=False)  # shared by every call: read-only
    return take, place


def window_weights(w):
    """``(F, C, 5, 5)`` kernels -> ``(4F, 36C)``: row (f, dr, ds) is kernel f placed at offset
    (dr, ds) in a 6x6 frame of zeros, so that one product with a patch of ``window_cols`` gives that
    window output. Columns follow ``window_cols``' rows: (c, a, b, u, v) is the frame's pixel
    (2u+a, 2v+b). One gather from precomputed indices (``_frame_index``; ``_frame`` builds the same
    matrix step by step)."""
    F, C = w.shape[:2]
    flat = np.concatenate((w.reshape(-1), np.zeros(1, w.dtype)))  # (F*C*25 + 1,): the kernels, then a zero
    return flat[_frame_index(F, C)[0]]


def fold_window_weights(dw):
    """Adjoint of ``window_weights``: ``(4F, 36C)`` -> ``(F, C, 5, 5)``, the four offsets summed in
    the order (0,0), (0,1), (1,0), (1,1); the frame's zeros drop out. Reads ``dw.T`` (a free view when
    dw is the transpose of a product, as in ``conv_backward``)."""
    F, C = dw.shape[0] // 4, dw.shape[1] // 36
    flat = np.ascontiguousarray(dw.T).reshape(-1)  # (36C, 4F) flattened
    place = _frame_index(F, C)[1]
    out = flat[place[0]] + flat[place[1]]
    out += flat[place[2]]
    out += flat[place[3]]
    return out


def window_cols(x):
    """The 6x6 patches at stride 2 of x ``(C, H, W, N)``, H and W even, as columns ``(36C, Ho*Wo*N)``,
    Ho = (H-4)/2:
    patch (i, j) covers the 2x2 window (i, j) of a 5x5 convolution's output.

    The image is first split into its four phases (even/odd rows x even/odd columns, (C, a, b, H/2,
    W/2, N)); a 6x6 patch at stride 2 is then a 3x3 patch at stride 1 of each phase, whose rows copy
    as runs of Wo*N numbers (not N). Rows are ordered (c, a, b, u, v): pixel (2u+a, 2v+b) of the patch.
    """
    C, H, W, N = x.shape
    Ho, Wo = (H - 4) // 2, (W - 4) // 2
    phases = np.empty((C, 2, 2, H // 2, W // 2, N), dtype=x.dtype)
    phases[...] = x.reshape(C, H // 2, 2, W // 2, 2, N).transpose(0, 2, 4, 1, 3, 5)  # (C,H,W,N) -> (C,a,b,H/2,W/2,N)
    cols = np.empty((4 * C, 3, 3, Ho, Wo, N), dtype=x.dtype)
    cols[...] = windows(phases.reshape(4 * C, H // 2, W // 2, N), 3, 1)  # (C,2,2,..) -> (4C,..): 3x3 patches
    return cols.reshape(36 * C, Ho * Wo * N)  # (4C,3,3,Ho,Wo,N) -> (36C, Ho*Wo*N), no copy


def window_col2im(dcols, x_shape):
    """Adjoint of ``window_cols``: ``(36C, Ho*Wo*N)`` -> ``(C, H, W, N)``, overlaps summed."""
    C, H, W, N = x_shape
    Ho, Wo = (H - 4) // 2, (W - 4) // 2
    dc = dcols.reshape(4 * C, 3, 3, Ho, Wo, N)  # (36C, Ho*Wo*N) -> (4C, 3, 3, Ho, Wo, N)
    dp = np.zeros((4 * C, H // 2, W // 2, N), dtype=dcols.dtype)  # the four phases' gradients
    for u in range(3):
        for v in range(3):
            dp[:, u:u + Ho, v:v + Wo] += dc[:, u, v]
    dx = np.empty(x_shape, dtype=dcols.dtype)
    dx.reshape(C, H // 2, 2, W // 2, 2, N)[...] = dp.reshape(C, 2, 2, H // 2, W // 2, N).transpose(0, 3, 1, 4, 2, 5)
    return dx  # (4C, H/2, W/2, N) -> (C, a, b, H/2, W/2, N) -> (C, H/2, a, W/2, b, N) = (C, H, W, N)


def conv_forward(x, w, b):
    """x ``(C, H, W, N)``, w ``(F, C, 5, 5)``, b ``(F,)`` -> a ``(4F, Ho*Wo*N)`` (eq. 5's weighted
    sums, grouped by 2x2 window, Ho = (H-4)/2) and the cache."""
    F = w.shape[0]
    ww = window_weights(w)
    cols = window_cols(x)
    out = ww @ cols  # (4F, 36C) @ (36C, Ho*Wo*N) -> (4F, Ho*Wo*N)
    out += np.repeat(b, 4)[:, None]  # (F,) -> (4F, 1): one per window offset
    return out, {"cols": cols, "ww": ww, "x_shape": x.shape, "F": F}


def conv_backward(dout, cache, need_dx=True):
    """dout ``(4F, M)`` -> (dx ``(C, H, W, N)`` or None, dw ``(F, C, 5, 5)``, db ``(F,)``).

    A shared weight's gradient sums every connection that uses it (eq. 19): over the columns in one
    product, then over the four offsets it appears at.
    """
    cols, ww, F = cache["cols"], cache["ww"], cache["F"]
    dww = (cols @ dout.T).T  # (36C, 4F).T -> (4F, 36C)
    dw = fold_window_weights(dww)
    db = dout.reshape(F, -1).sum(axis=1)  # (4F, M) -> (F, 4M)
    if not need_dx:
        return None, dw, db
    return window_col2im(ww.T @ dout, cache["x_shape"]), dw, db  # (36C, 4F) @ (4F, M) -> (36C, M)


def conv_curvature(d2out, cache, need_dx=True):
    """Diagonal Gauss-Newton curvature (eqs. 25, 27): backprop with squared inputs and weights."""
    sq = dict(cache, cols=cache["cols"] ** 2, ww=cache["ww"] ** 2)
    return conv_backward(d2out, sq, need_dx)


def subsample_forward(x, coef, b, shape):
    """S layer over windowed C outputs: x ``(4F, M)`` -> coef * (window sum) + bias ``(F, Ho, Wo, N)``
    (§II.B), ``shape`` = (F, Ho, Wo, N)."""
    F = shape[0]
    r = x.reshape(F, 4, -1)  # (4F, M) -> (F, 4, M): the four outputs of each window
    s = r[:, 0] + r[:, 1]
    s += r[:, 2]
    s += r[:, 3]
    out = s * coef[:, None]
    out += b[:, None]
    return out.reshape(shape), {"s": s, "coef": coef}  # (F, M) -> (F, Ho, Wo, N)


def subsample_backward(dout, cache):
    """dout ``(F, Ho, Wo, N)`` -> (dx ``(4F, M)``, dcoef ``(F,)``, db ``(F,)``)."""
    s, coef = cache["s"], cache["coef"]
    F = s.shape[0]
    d = dout.reshape(F, -1)  # (F, Ho, Wo, N) -> (F, M)
    dcoef = np.einsum("fm,fm->f", d, s)
    db = d.sum(axis=1)
    ds = d * coef[:, None]
    dx = np.empty((F, 4, ds.shape[1]), dtype=ds.dtype)
    dx[...] = ds[:, None]  # every input of a window receives the window's gradient
    return dx.reshape(4 * F, -1), dcoef, db  # (F, 4, M) -> (4F, M)


def subsample_curvature(d2out, cache):
    """Curvature through subsampling: inputs' second derivatives scale by coef**2 (App. C)."""
    return subsample_backward(d2out, {"s": cache["s"] ** 2, "coef": cache["coef"] ** 2})
