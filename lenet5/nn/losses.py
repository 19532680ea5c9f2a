"""The two training criteria of §II.C, on the RBF penalties y ``(N, 10)``.

Both return ``(loss, dy)``: the loss is the mean over the batch, ``dy = dloss/dy`` ``(N, 10)``.
"""

import numpy as np

CRITERIA = ("mse", "map")


def mse_loss(y, labels):
    """Eq. 8: E = (1/P) sum_p y_{D_p}, the penalty of the correct class."""
    n = y.shape[0]
    rows = np.arange(n)
    loss = float(y[rows, labels].astype(np.float64).mean())
    dy = np.zeros_like(y)
    dy[rows, labels] = 1.0 / n
    return loss, dy


def map_loss(y, labels, j):
    """Eq. 9: E = (1/P) sum_p [ y_{D_p} + log(e^{-j} + sum_i e^{-y_i}) ].

    dE/dy_i = (delta_{i,D} - q_i) / P with q_i = e^{-y_i} / (e^{-j} + sum_k e^{-y_k}); computed with a
    shift by the largest exponent so that large penalties never overflow.
    """
    n = y.shape[0]
    rows = np.arange(n)
    z = np.concatenate([np.full((n, 1), -j, dtype=y.dtype), -y], axis=1)  # (N, 11): rubbish class first
    zmax = z.max(axis=1, keepdims=True)
    ez = np.exp(z - zmax)
    total = ez.sum(axis=1, keepdims=True)
    lse = np.log(total) + zmax  # (N, 1)
    loss = float((y[rows, labels] + lse[:, 0]).astype(np.float64).mean())
    q = ez[:, 1:] / total  # (N, 10)
    dy = -q
    dy[rows, labels] += 1.0
    dy /= n
    return loss, dy


def loss_and_dy(y, labels, criterion="mse", j=0.1):
    """Dispatch on the criterion name ("mse" or "map")."""
    if criterion == "mse":
        return mse_loss(y, labels)
    if criterion == "map":
        return map_loss(y, labels, j)
    raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
