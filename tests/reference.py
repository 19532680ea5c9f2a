"""Slow, plainly written loop versions of LeNet-5's pieces, taken from the paper, for the tests.

Nothing here comes from ``lenet5``: this module is the independent oracle the vectorised engine is
checked against. Everything works on ONE pattern in float64, in the paper's own terms: a feature map
stack is ``(C, H, W)``, a layer of units is ``(D,)``. Sums are written as explicit loops over units and
connections, so each line can be read against LeCun et al. 1998 (§II.B, eqs. 5-9, Appendices A and C).
Parameters are passed as a dict keyed like the model's ``params`` (``"C1.weight"`` ...).
"""

import math

import numpy as np

A = 1.7159  # squash amplitude (App. A)
S = 2.0 / 3.0  # squash slope (App. A)

# Table I as printed: row = S2 map, column = C3 map, "X" = the C3 map reads that S2 map.
TABLE_I_ROWS = (
    "X...XXX..XXXX.XX",
    "XX...XXX..XXXX.X",
    "XXX...XXX..X.XXX",
    ".XXX..XXXX..X.XX",
    "..XXX..XXXX.XX.X",
    "...XXX..XXXX.XXX",
)


def c3_inputs():
    """For each of the 16 C3 maps, the set of S2 maps it reads (Table I, read by columns)."""
    return [{s for s in range(6) if TABLE_I_ROWS[s][m] == "X"} for m in range(16)]


def c3_mask():
    """``(16, 6)`` 0/1 array: entry [m, s] is 1 when C3 map m reads S2 map s."""
    return np.array([[float(TABLE_I_ROWS[s][m] == "X") for s in range(6)] for m in range(16)])


# ---------------------------------------------------------------- squashing function (eq. 6)
def squash(a):
    """f(a) = A tanh(S a), elementwise."""
    return A * np.tanh(S * np.asarray(a, dtype=np.float64))


def squash_prime(a):
    """f'(a) = A S (1 - tanh^2(S a)), computed from a (not from f(a))."""
    t = np.tanh(S * np.asarray(a, dtype=np.float64))
    return A * S * (1.0 - t * t)


# ---------------------------------------------------------------- convolution (C1, C3, C5)
def conv2d(x, w, b, inputs=None):
    """Valid 2-D convolution, stride 1: x ``(C, H, W)``, w ``(F, C, k, k)``, b ``(F,)`` -> ``(F, H-k+1, W-k+1)``.

    a[f, i, j] = b[f] + sum_{c, u, v} w[f, c, u, v] x[c, i+u, j+v] (eq. 5). ``inputs[f]``, when given,
    is the set of input maps that output map f reads (Table I); other maps are not connected.
    """
    (C, H, W), (F, _, k, _) = x.shape, w.shape
    Ho, Wo = H - k + 1, W - k + 1
    out = np.zeros((F, Ho, Wo))
    for f in range(F):
        for i in range(Ho):
            for j in range(Wo):
                total = b[f]
                for c in range(C):
                    if inputs is not None and c not in inputs[f]:
                        continue
                    for u in range(k):
                        for v in range(k):
                            total += w[f, c, u, v] * x[c, i + u, j + v]
                out[f, i, j] = total
    return out


def conv2d_backward(dout, x, w, inputs=None):
    """Gradients of ``conv2d``: dout ``(F, Ho, Wo)`` -> dx ``(C, H, W)``, dw ``(F, C, k, k)``, db ``(F,)``.

    Each connection (f,i,j) <- (c,i+u,j+v) adds its share; a shared weight sums them (eq. 19).
    """
    (C, H, W), (F, _, k, _) = x.shape, w.shape
    Ho, Wo = H - k + 1, W - k + 1
    dx, dw, db = np.zeros(x.shape), np.zeros(w.shape), np.zeros(F)
    for f in range(F):
        for i in range(Ho):
            for j in range(Wo):
                g = dout[f, i, j]
                db[f] += g
                for c in range(C):
                    if inputs is not None and c not in inputs[f]:
                        continue
                    for u in range(k):
                        for v in range(k):
                            dw[f, c, u, v] += g * x[c, i + u, j + v]
                            dx[c, i + u, j + v] += g * w[f, c, u, v]
    return dx, dw, db


# ---------------------------------------------------------------- subsampling (S2, S4)
def subsample(x, coef, b):
    """x ``(C, H, W)`` -> ``(C, H/2, W/2)``: a = coef[c] * (sum of the 2x2 window) + b[c] (§II.B)."""
    C, H, W = x.shape
    out = np.zeros((C, H // 2, W // 2))
    for c in range(C):
        for p in range(H // 2):
            for q in range(W // 2):
                s = x[c, 2 * p, 2 * q] + x[c, 2 * p, 2 * q + 1] + x[c, 2 * p + 1, 2 * q] + x[c, 2 * p + 1, 2 * q + 1]
                out[c, p, q] = coef[c] * s + b[c]
    return out


def subsample_backward(dout, x, coef):
    """dout ``(C, H/2, W/2)`` -> dx ``(C, H, W)``, dcoef ``(C,)``, db ``(C,)``."""
    C, Hh, Wh = dout.shape
    dx, dcoef, db = np.zeros(x.shape), np.zeros(C), np.zeros(C)
    for c in range(C):
        for p in range(Hh):
            for q in range(Wh):
                g = dout[c, p, q]
                s = 0.0
                for di in range(2):
                    for dj in range(2):
                        s += x[c, 2 * p + di, 2 * q + dj]
                        dx[c, 2 * p + di, 2 * q + dj] += g * coef[c]
                dcoef[c] += g * s
                db[c] += g
    return dx, dcoef, db


# ---------------------------------------------------------------- full connection (F6)
def full(x, w, b):
    """a_i = b_i + sum_j w_ij x_j: x ``(D,)``, w ``(M, D)``, b ``(M,)`` -> ``(M,)``."""
    M, D = w.shape
    return np.array([b[i] + sum(w[i, j] * x[j] for j in range(D)) for i in range(M)])


def full_backward(dout, x, w):
    """dout ``(M,)`` -> dx ``(D,)``, dw ``(M, D)``, db ``(M,)``."""
    M, D = w.shape
    dx, dw, db = np.zeros(D), np.zeros((M, D)), np.zeros(M)
    for i in range(M):
        db[i] = dout[i]
        for j in range(D):
            dw[i, j] = dout[i] * x[j]
            dx[j] += dout[i] * w[i, j]
    return dx, dw, db


# ---------------------------------------------------------------- Euclidean RBF output (eq. 7)
def rbf(x, centres):
    """y_i = sum_j (x_j - w_ij)^2: x ``(84,)``, centres ``(10, 84)`` -> y ``(10,)``."""
    M, D = centres.shape
    y = np.zeros(M)
    for i in range(M):
        for j in range(D):
            y[i] += (x[j] - centres[i, j]) ** 2
    return y


def rbf_backward(dy, x, centres):
    """dy ``(10,)`` -> dx ``(84,)``: dE/dx_j = sum_i dE/dy_i 2 (x_j - w_ij)."""
    M, D = centres.shape
    dx = np.zeros(D)
    for i in range(M):
        for j in range(D):
            dx[j] += dy[i] * 2.0 * (x[j] - centres[i, j])
    return dx


# ---------------------------------------------------------------- losses per pattern (eqs. 8, 9)
def mse_pattern(y, label):
    """Eq. 8 for one pattern: the penalty of the correct class, y_D."""
    return float(y[label])


def map_pattern(y, label, j):
    """Eq. 9 for one pattern: y_D + log(e^{-j} + sum_i e^{-y_i})."""
    return float(y[label] + math.log(math.exp(-j) + sum(math.exp(-float(v)) for v in y)))


# ---------------------------------------------------------------- the whole network, one image
def network_trace(params, centres, image):
    """Forward pass of one image ``(1, 32, 32)`` as §II.B describes it.

    Returns a dict with every layer's weighted sums ``<L>.a`` and outputs ``<L>.x`` and the RBF
    penalties ``y`` ``(10,)``. C3 reads only the S2 maps of Table I; C5 reads all 16 S4 maps.
    """
    p, t = params, {"in": np.asarray(image, dtype=np.float64)}
    t["C1.a"] = conv2d(t["in"], p["C1.weight"], p["C1.bias"])  # (6, 28, 28)
    t["C1.x"] = squash(t["C1.a"])
    t["S2.a"] = subsample(t["C1.x"], p["S2.coef"], p["S2.bias"])  # (6, 14, 14)
    t["S2.x"] = squash(t["S2.a"])
    t["C3.a"] = conv2d(t["S2.x"], p["C3.weight"], p["C3.bias"], inputs=c3_inputs())  # (16, 10, 10)
    t["C3.x"] = squash(t["C3.a"])
    t["S4.a"] = subsample(t["C3.x"], p["S4.coef"], p["S4.bias"])  # (16, 5, 5)
    t["S4.x"] = squash(t["S4.a"])
    t["C5.a"] = conv2d(t["S4.x"], p["C5.weight"], p["C5.bias"])  # (120, 1, 1)
    t["C5.x"] = squash(t["C5.a"]).reshape(120)  # (120, 1, 1) -> (120,)
    t["F6.a"] = full(t["C5.x"], p["F6.weight"], p["F6.bias"])  # (84,)
    t["F6.x"] = squash(t["F6.a"])
    t["y"] = rbf(t["F6.x"], centres)  # (10,)
    return t


def network_forward(params, centres, image):
    """RBF penalties ``(10,)`` of one image ``(1, 32, 32)``."""
    return network_trace(params, centres, image)["y"]


# ---------------------------------------------------------------- Gauss-Newton curvature (App. C)
def conv2d_curvature(d2a, x, w, inputs=None):
    """One conv layer, one pattern: d2a ``(F, Ho, Wo)`` -> d2x ``(C, H, W)``, hw ``(F, C, k, k)``, hb ``(F,)``.

    h of a shared weight: sum over its connections of d2E/da_i^2 x_j^2 (eqs. 23, 25), x = 1 for the
    bias; d2E/dx_j^2 = sum over the connections leaving x_j of w^2 d2E/da_i^2 (eq. 26 without f'').
    """
    F, Ho, Wo = d2a.shape
    C, k = x.shape[0], w.shape[2]
    d2x, hw, hb = np.zeros(x.shape), np.zeros(w.shape), np.zeros(F)
    for f in range(F):
        for i in range(Ho):
            for j in range(Wo):
                g = d2a[f, i, j]
                hb[f] += g
                for c in range(C):
                    if inputs is not None and c not in inputs[f]:
                        continue
                    for u in range(k):
                        for v in range(k):
                            hw[f, c, u, v] += g * x[c, i + u, j + v] ** 2
                            d2x[c, i + u, j + v] += w[f, c, u, v] ** 2 * g
    return d2x, hw, hb


def subsample_curvature(d2a, x, coef):
    """One S-layer: d2a ``(C, H/2, W/2)`` -> d2x ``(C, H, W)``, hcoef ``(C,)``, hb ``(C,)``.

    x = the window's sum for the coefficient, 1 for the bias; each input gets coef^2 d2E/da^2.
    """
    C, Hh, Wh = d2a.shape
    d2x, hcoef, hb = np.zeros(x.shape), np.zeros(C), np.zeros(C)
    for c in range(C):
        for p in range(Hh):
            for q in range(Wh):
                g = d2a[c, p, q]
                window = [(2 * p + di, 2 * q + dj) for di in range(2) for dj in range(2)]
                s = sum(x[c, r, col] for r, col in window)
                hcoef[c] += g * s ** 2
                hb[c] += g
                for r, col in window:
                    d2x[c, r, col] = coef[c] ** 2 * g
    return d2x, hcoef, hb


def network_curvature(params, centres, image):
    """Diagonal Gauss-Newton h_kk of every parameter for ONE pattern, keyed like ``params``.

    Starts from d2E/dx^2 = 2 at each F6 output (the second derivative of y_D = sum_j (x_j - w_Dj)^2)
    and goes down layer by layer: d2E/da^2 = f'(a)^2 d2E/dx^2 (eq. 27), then eqs. 23, 25, 26.
    C3 entries outside Table I have no connection and keep h = 0.
    """
    p, t, h = params, network_trace(params, centres, image), {}
    d2a = squash_prime(t["F6.a"]) ** 2 * 2.0  # (84,)
    d2x, h["F6.weight"], h["F6.bias"] = np.zeros(120), np.zeros((84, 120)), np.zeros(84)
    for i in range(84):
        h["F6.bias"][i] = d2a[i]
        for j in range(120):
            h["F6.weight"][i, j] = d2a[i] * t["C5.x"][j] ** 2
            d2x[j] += p["F6.weight"][i, j] ** 2 * d2a[i]
    d2a = squash_prime(t["C5.a"]) ** 2 * d2x.reshape(120, 1, 1)  # (120,) -> (120, 1, 1)
    d2x, h["C5.weight"], h["C5.bias"] = conv2d_curvature(d2a, t["S4.x"], p["C5.weight"])
    d2a = squash_prime(t["S4.a"]) ** 2 * d2x
    d2x, h["S4.coef"], h["S4.bias"] = subsample_curvature(d2a, t["C3.x"], p["S4.coef"])
    d2a = squash_prime(t["C3.a"]) ** 2 * d2x
    d2x, h["C3.weight"], h["C3.bias"] = conv2d_curvature(d2a, t["S2.x"], p["C3.weight"], c3_inputs())
    d2a = squash_prime(t["S2.a"]) ** 2 * d2x
    d2x, h["S2.coef"], h["S2.bias"] = subsample_curvature(d2a, t["C1.x"], p["S2.coef"])
    d2a = squash_prime(t["C1.a"]) ** 2 * d2x
    _, h["C1.weight"], h["C1.bias"] = conv2d_curvature(d2a, t["in"], p["C1.weight"])
    return h


# ---------------------------------------------------------------- test parameters
def lively_params(rng):
    """Random parameters in the paper's shapes whose units work well inside the squash's range.

    The paper's init (+/-2.4/Fi, zero biases) leaves C5 and F6 outputs near 1e-3, where f' is
    almost constant; weights of +/-2/sqrt(Fi) and biases of +/-0.5 keep the sums of order 1.
    """
    fan = {"C1": 25, "S2": 4, "C3": 150, "S4": 4, "C5": 400, "F6": 120}
    shapes = {"C1": (6, 1, 5, 5), "S2": (6,), "C3": (16, 6, 5, 5), "S4": (16,), "C5": (120, 16, 5, 5),
              "F6": (84, 120)}
    p = {}
    for layer, shape in shapes.items():
        kind = "coef" if layer[0] == "S" else "weight"
        p[f"{layer}.{kind}"] = rng.uniform(-1, 1, shape) * 2.0 / math.sqrt(fan[layer])
        p[f"{layer}.bias"] = rng.uniform(-0.5, 0.5, shape[0])
    p["C3.weight"] *= c3_mask()[:, :, None, None]  # (16, 6) -> (16, 6, 1, 1)
    return p
