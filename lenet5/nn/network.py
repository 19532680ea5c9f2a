"""The whole network on one batch: forward pass, gradient backprop and curvature backprop (App. C).

Pure functions of the parameters (a dict keyed as ``architecture.PARAM_SHAPES``), the fixed RBF
centres ``(10, 84)`` and the images ``(N, 1, 32, 32)``. Inside, feature maps travel channels first
and batch last, ``(C, H, W, N)``, as in ``layers.py``; C1 and C3 give their outputs grouped by the
2x2 windows of S2 and S4 (``window.py``). How a batch is cut into cache-sized pieces
and shared out between processes is decided above this layer (``lenet5/parallel``).
"""

import numpy as np

from . import layers as L
from . import window as Win
from .architecture import INPUT_SHAPE, PARAM_SHAPES
from .losses import loss_and_dy


def check_input(x):
    """Raise ValueError unless x has the shape ``(N, 1, 32, 32)``."""
    if x.ndim != 4 or x.shape[1:] != INPUT_SHAPE:
        raise ValueError(f"input must have shape (N, 1, 32, 32), got {x.shape}")


def forward(x, params, centres):
    """x ``(N, 1, 32, 32)`` -> RBF penalties y ``(N, 10)`` and the caches of the backward passes."""
    p, n = params, x.shape[0]
    x = np.asarray(x, dtype=centres.dtype)
    check_input(x)
    c = {}
    h = L.batch_last(x)  # (N,1,32,32) -> (1,32,32,N)
    a, c["C1"] = Win.conv_forward(h, p["C1.weight"], p["C1.bias"])  # (24, 14*14*N): C1 by 2x2 window
    h, c["C1f"] = L.squash_forward(a)
    a, c["S2"] = Win.subsample_forward(h, p["S2.coef"], p["S2.bias"], (6, 14, 14, n))  # (6,14,14,N)
    h, c["S2f"] = L.squash_forward(a)
    a, c["C3"] = Win.conv_forward(h, p["C3.weight"], p["C3.bias"])  # (64, 5*5*N): C3 by 2x2 window
    h, c["C3f"] = L.squash_forward(a)
    a, c["S4"] = Win.subsample_forward(h, p["S4.coef"], p["S4.bias"], (16, 5, 5, n))  # (16,5,5,N)
    h, c["S4f"] = L.squash_forward(a)
    a, c["C5"] = L.conv_forward(h, p["C5.weight"], p["C5.bias"])  # (120,1,1,N)
    h, c["C5f"] = L.squash_forward(a.reshape(120, n))  # (120,1,1,N) -> (120,N)
    a, c["F6"] = L.full_forward(h, p["F6.weight"], p["F6.bias"])  # (84,N)
    h, c["F6f"] = L.squash_forward(a)
    y, c["RBF"] = L.rbf_forward(h, centres)  # (N,10)
    return y, c


def backprop(d, c, mask, curvature=False):
    """Shared chain for gradients (eq. 19) and Gauss-Newton curvatures (eqs. 25-27).

    ``d`` is dE/dx (or d2E/dx2) at F6's output ``(84, N)``; ``c`` the caches of ``forward``; ``mask``
    the ``(16, 6, 1, 1)`` Table I mask. Returns a dict keyed like the parameters.
    """
    conv = L.conv_curvature if curvature else L.conv_backward
    wconv = Win.conv_curvature if curvature else Win.conv_backward
    sub = Win.subsample_curvature if curvature else Win.subsample_backward
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
    d, g["C3.weight"], g["C3.bias"] = wconv(d, c["C3"])
    g["C3.weight"] *= mask  # connections absent from Table I have no gradient
    d = sq(d, c["S2f"])
    d, g["S2.coef"], g["S2.bias"] = sub(d, c["S2"])
    d = sq(d, c["C1f"])
    _, g["C1.weight"], g["C1.bias"] = wconv(d, c["C1"], need_dx=False)
    return {k: g[k] for k in PARAM_SHAPES}


def loss_grads(x, labels, params, centres, mask, criterion="mse", j=0.1):
    """Mean loss (eq. 8 or 9), its gradient per parameter, and the penalties y ``(N, 10)``."""
    y, c = forward(x, params, centres)
    loss, dy = loss_and_dy(y, labels, criterion, j)
    d = L.rbf_backward(dy.astype(centres.dtype, copy=False), c["RBF"])
    return loss, backprop(d, c, mask), y


def curvature(x, params, centres, mask):
    """Per-parameter h_kk averaged over the patterns of x (eqs. 23-27, Gauss-Newton).

    At the output, d2E/dx_j^2 = 2 for every F6 unit: the second derivative of the correct class's
    penalty y_D = sum_j (x_j - w_Dj)^2 (eq. 8's term, also used for eq. 9's criterion, whose
    competitive term can make the exact value negative).
    """
    _, c = forward(x, params, centres)
    d2 = np.full((84, x.shape[0]), 2.0 / x.shape[0], dtype=centres.dtype)
    return backprop(d2, c, mask, curvature=True)
