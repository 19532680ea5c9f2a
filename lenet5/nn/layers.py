"""LeNet-5's layers as pure forward/backward function pairs (cs231n style).

Every ``*_forward(x, ...)`` returns ``(out, cache)`` and every ``*_backward(dout, cache)`` returns the
gradient with respect to the input and the layer's parameters. Inside the network feature maps travel
channels first and batch last: ``(C, H, W, N)`` for maps and ``(D, N)`` for vectors. With that
layout each layer is one wide matrix product ``(F, C*k*k) @ (C*k*k, H*W*N)`` whose result is
already the next layer's input (BLAS runs it far faster than the tall, thin
``(N*H*W, C*k*k) @ (C*k*k, F)`` of the NCHW/NHWC layouts), and every shifted window, subsampling
or upsampling step moves contiguous runs of at least N numbers instead of rows of 5 to 28.
The public parameter shapes keep the usual ``(F, C, kh, kw)`` order.

The network runs C5 through ``conv_forward`` here; C1+S2 and C3+S4 run through ``window.py``, which
computes a convolution and the subsampling after it over 2x2 windows and is tested against the plain
convolution and subsampling of this file.

The same backward functions give the Gauss-Newton curvature of Appendix C: the second-derivative
backprop of eqs. 25-27 is the gradient backprop with every multiplier squared (weights, inputs and
f'(a)). ``*_curvature(d2out, cache)`` functions do exactly that by calling the backward function on a
squared cache, so the two can never drift apart.
"""

import numpy as np

# Scaled hyperbolic tangent f(a) = A tanh(S a), eq. 6 and Appendix A.
SQUASH_A = 1.7159
SQUASH_S = 2.0 / 3.0


# ---------------------------------------------------------------- layout
def batch_last(x):
    """Images ``(N, C, H, W)`` -> ``(C, H, W, N)``, a new contiguous array.

    Copied through rows padded by 16 numbers: a plain transposed copy reads the images with a stride
    of C*H*W numbers (4 KiB for 32x32 float32), which sends every read of a run to the same cache set;
    measured for 64 images, 219 us plainly and 53 us through the padded rows.
    """
    n, size = x.shape[0], int(np.prod(x.shape[1:]))
    rows = np.empty((n, size + 16), dtype=x.dtype)
    rows[:, :size] = x.reshape(n, size)  # (N, C, H, W) -> (N, C*H*W)
    out = np.empty((size, n), dtype=x.dtype)
    out[...] = rows[:, :size].T  # (N, C*H*W) -> (C*H*W, N)
    return out.reshape(*x.shape[1:], n)  # (C*H*W, N) -> (C, H, W, N)


# ---------------------------------------------------------------- convolution (C1, C3, C5)
def im2col(x, k):
    """Patches of x ``(C, H, W, N)`` as columns: ``(C*k*k, Ho*Wo*N)``, rows in (C, kh, kw) order."""
    C, H, W, N = x.shape
    Ho, Wo = H - k + 1, W - k + 1
    if Ho == 1 and Wo == 1:  # one window covers the map (C5): the columns are the map itself
        return x.reshape(C * k * k, N)  # (C, k, k, N) -> (C*k*k, N), no copy
    cols = np.empty((C, k, k, Ho, Wo, N), dtype=x.dtype)
    cols[...] = windows(x, k, 1)  # one copy of every window (was k*k slice copies: same numbers, more calls)
    return cols.reshape(C * k * k, Ho * Wo * N)  # (C,k,k,Ho,Wo,N) -> (C*k*k, Ho*Wo*N), no copy


def windows(x, k, stride):
    """Read-only view ``(C, k, k, Ho, Wo, N)`` of x ``(C, H, W, N)``: element (c, i, j, r, s, n) is
    x[c, stride*r + i, stride*s + j, n], with Ho = (H - k) // stride + 1 (likewise Wo)."""
    C, H, W, N = x.shape
    Ho, Wo = (H - k) // stride + 1, (W - k) // stride + 1
    sc, sh, sw, sn = x.strides
    return np.lib.stride_tricks.as_strided(x, (C, k, k, Ho, Wo, N), (sc, sh, sw, stride * sh, stride * sw, sn),
                                           writeable=False)


def col2im(dcols, x_shape, k):
    """Adjoint of ``im2col``: ``(C*k*k, Ho*Wo*N)`` -> ``(C, H, W, N)``, overlaps summed."""
    C, H, W, N = x_shape
    Ho, Wo = H - k + 1, W - k + 1
    if Ho == 1 and Wo == 1:  # no overlaps
        return dcols.reshape(x_shape)  # (C*k*k, N) -> (C, k, k, N)
    dc = dcols.reshape(C, k, k, Ho, Wo, N)  # (C*k*k, Ho*Wo*N) -> (C, k, k, Ho, Wo, N)
    dx = np.zeros(x_shape, dtype=dcols.dtype)
    for i in range(k):
        for j in range(k):
            dx[:, i:i + Ho, j:j + Wo, :] += dc[:, i, j]
    return dx


def conv_forward(x, w, b):
    """Valid 2-D convolution (cross-correlation, stride 1) by im2col and one matrix product.

    Parameters: x ``(C, H, W, N)``; w ``(F, C, k, k)``; b ``(F,)``.
    Returns: a ``(F, H-k+1, W-k+1, N)`` (the weighted sums of eq. 5) and the cache.
    """
    C, H, W, N = x.shape
    F, _, k, _ = w.shape
    cols = im2col(x, k)  # (C*k*k, Ho*Wo*N)
    out = w.reshape(F, C * k * k) @ cols  # (F, C*k*k) @ (C*k*k, Ho*Wo*N) -> (F, Ho*Wo*N)
    out += b[:, None]
    cache = {"cols": cols, "w": w, "x_shape": x.shape}
    return out.reshape(F, H - k + 1, W - k + 1, N), cache  # (F, Ho*Wo*N) -> (F, Ho, Wo, N)


def conv_backward(dout, cache, need_dx=True):
    """Gradients of a convolution: dout ``(F, Ho, Wo, N)`` -> (dx ``(C, H, W, N)`` or None, dw, db).

    A shared weight's gradient is the sum over all connections that use it (eq. 19).
    """
    cols, w = cache["cols"], cache["w"]
    F, C, k, _ = w.shape
    d2 = dout.reshape(F, -1)  # (F, Ho, Wo, N) -> (F, Ho*Wo*N)
    dw = (cols @ d2.T).T.reshape(w.shape)  # (C*k*k, F).T -> (F, C*k*k) -> (F, C, k, k); BLAS likes this order
    db = d2.sum(axis=1)
    if not need_dx:
        return None, dw, db
    dcols = w.reshape(F, C * k * k).T @ d2  # (C*k*k, Ho*Wo*N)
    return col2im(dcols, cache["x_shape"], k), dw, db


def conv_curvature(d2out, cache, need_dx=True):
    """Diagonal Gauss-Newton curvature (eqs. 25, 27): backprop with squared inputs and weights."""
    sq = {"cols": cache["cols"] ** 2, "w": cache["w"] ** 2, "x_shape": cache["x_shape"]}
    return conv_backward(d2out, sq, need_dx)


# ---------------------------------------------------------------- subsampling (S2, S4)
def subsample_forward(x, coef, b):
    """Paper's subsampling: per map, coef * (sum of each 2x2 window, stride 2) + bias (§II.B).

    Parameters: x ``(C, H, W, N)`` with H, W even; coef ``(C,)``; b ``(C,)``.
    Returns: a ``(C, H/2, W/2, N)`` and the cache.
    """
    C, H, W, N = x.shape
    r = x.reshape(C, H // 2, 2, W, N)  # (C, H/2, 2, W, N): vertical pairs
    r = r[:, :, 0] + r[:, :, 1]  # (C, H/2, W, N)
    r = r.reshape(C, H // 2, W // 2, 2, N)  # (C, H/2, W/2, 2, N): horizontal pairs
    s = r[:, :, :, 0] + r[:, :, :, 1]  # (C, H/2, W/2, N): window sums
    out = s * coef[:, None, None, None] + b[:, None, None, None]
    return out, {"s": s, "coef": coef}


def subsample_backward(dout, cache):
    """dout ``(C, H/2, W/2, N)`` -> (dx ``(C, H, W, N)``, dcoef ``(C,)``, db ``(C,)``)."""
    s, coef = cache["s"], cache["coef"]
    dcoef = np.einsum("chwn,chwn->c", dout, s)
    db = dout.sum(axis=(1, 2, 3))
    ds = dout * coef[:, None, None, None]  # (C, H/2, W/2, N)
    # every input of a window receives the window's gradient
    dx = ds.repeat(2, axis=2).repeat(2, axis=1)  # (C, H/2, W/2, N) -> (C, H, W, N)
    return dx, dcoef, db


def subsample_curvature(d2out, cache):
    """Curvature through subsampling: inputs' second derivatives scale by coef**2 (App. C)."""
    return subsample_backward(d2out, {"s": cache["s"] ** 2, "coef": cache["coef"] ** 2})


# ---------------------------------------------------------------- full connection (F6)
def full_forward(x, w, b):
    """a = w @ x + b. x ``(D, N)`` (features first), w ``(M, D)``, b ``(M,)`` -> a ``(M, N)``."""
    out = w @ x
    out += b[:, None]
    return out, {"x": x, "w": w}


def full_backward(dout, cache, need_dx=True):
    """dout ``(M, N)`` -> (dx ``(D, N)`` or None, dw ``(M, D)``, db ``(M,)``)."""
    x, w = cache["x"], cache["w"]
    dw = dout @ x.T
    db = dout.sum(axis=1)
    return (w.T @ dout if need_dx else None), dw, db


def full_curvature(d2out, cache, need_dx=True):
    """Curvature through a full layer (eqs. 25, 27)."""
    return full_backward(d2out, {"x": cache["x"] ** 2, "w": cache["w"] ** 2}, need_dx)


# ---------------------------------------------------------------- squashing function
def squash_forward(a):
    """x = f(a) = A tanh(S a) (eq. 6), elementwise. Returns (x, cache)."""
    out = a * SQUASH_S
    np.tanh(out, out=out)
    out *= SQUASH_A
    return out, {"out": out}


def squash_derivative(out):
    """f'(a) from the output: A S (1 - tanh^2(S a)) = S A - (S / A) x^2."""
    return SQUASH_S * SQUASH_A - (SQUASH_S / SQUASH_A) * (out * out)


def squash_backward(dout, cache):
    """da = dx * f'(a), in one buffer (the same operations, in the same order, as ``dout *
    squash_derivative(out)``; products commute exactly)."""
    out = cache["out"]
    if dout.dtype != out.dtype or dout.shape != out.shape:
        return dout * squash_derivative(out)
    t = np.multiply(out, out)
    t *= SQUASH_S / SQUASH_A
    np.subtract(SQUASH_S * SQUASH_A, t, out=t)
    t *= dout
    return t


def squash_curvature(d2out, cache):
    """d2E/da2 = f'(a)^2 d2E/dx2, the f'' term dropped (Gauss-Newton, eq. 27)."""
    return d2out * squash_derivative(cache["out"]) ** 2


# ---------------------------------------------------------------- Euclidean RBF output
def rbf_forward(x, centres):
    """y_i = sum_j (x_j - w_ij)^2 (eq. 7). x ``(84, N)``, centres ``(10, 84)`` -> y ``(N, 10)``."""
    y = (x * x).sum(axis=0)[:, None] - 2.0 * (centres @ x).T + (centres * centres).sum(axis=1)  # (N, 10)
    return y, {"x": x, "centres": centres}


def rbf_backward(dy, cache):
    """dy ``(N, 10)`` -> dx ``(84, N)``: dE/dx_j = sum_i dE/dy_i 2 (x_j - w_ij). Centres are fixed."""
    x, centres = cache["x"], cache["centres"]
    return 2.0 * (x * dy.sum(axis=1) - centres.T @ dy.T)  # (84, N)
