"""Tests of lenet5.nn.layers: every vectorised layer against the loop reference and finite differences.

The engine's layout is (C, H, W, N) for maps and (D, N) for vectors; the reference works on one
pattern, (C, H, W) or (D,), so each check loops over the batch. All in float64. Backward passes are
checked twice: against the loop reference and against central finite differences of the scalar
objective sum(out * R) with a random R (relative error < 1e-6). Curvature functions must equal the
reference backward pass run with squared multipliers (App. C), and the explicit curvature loops.
"""

import numpy as np
import pytest

from conftest import numeric_grad, rel_error
from lenet5.nn import layers as L
from reference import (conv2d, conv2d_backward, conv2d_curvature, full, full_backward, rbf, rbf_backward,
                       squash, squash_prime, subsample, subsample_backward, subsample_curvature)

SHAPES = [  # (C, N, H, F, k): small random shapes, square maps
    (2, 2, 6, 3, 3),
    (3, 3, 8, 2, 5),
    (1, 2, 7, 4, 3),
    (3, 2, 5, 4, 5),  # one window covers the map, as in C5
]


def E(a):
    """(C, N, H, W) as the tests build maps -> the engine's (C, H, W, N)."""
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def B(a):
    """The engine's (C, H, W, N) -> (C, N, H, W), to compare image by image."""
    return np.moveaxis(a, -1, 1)


# ---------------------------------------------------------------- im2col / col2im
@pytest.mark.parametrize("C,N,H,F,k", SHAPES)
def test_im2col_matches_its_definition_and_col2im_is_its_adjoint(C, N, H, F, k):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(C, N, H, H))
    Ho = H - k + 1
    cols = L.im2col(E(x), k)
    assert cols.shape == (C * k * k, Ho * Ho * N)
    for c, u, v, n, i, j in [tuple(rng.integers(0, m) for m in (C, k, k, N, Ho, Ho)) for _ in range(30)]:
        assert cols[(c * k + u) * k + v, (i * Ho + j) * N + n] == x[c, n, i + u, j + v]
    y = rng.normal(size=cols.shape)
    back = B(L.col2im(y, E(x).shape, k))
    assert back.shape == x.shape
    lhs, rhs = np.sum(cols * y), np.sum(x * back)
    assert abs(lhs - rhs) <= 1e-12 * max(abs(lhs), 1.0)


# ---------------------------------------------------------------- convolution
def conv_case(C, N, H, F, k, seed=2):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(C, N, H, H)), rng.normal(size=(F, C, k, k)), rng.normal(size=F)


@pytest.mark.parametrize("C,N,H,F,k", SHAPES)
def test_conv_forward_matches_loop_reference(C, N, H, F, k):
    x, w, b = conv_case(C, N, H, F, k)
    out, _ = L.conv_forward(E(x), w, b)
    out = B(out)
    assert out.shape == (F, N, H - k + 1, H - k + 1)
    for n in range(N):
        assert rel_error(out[:, n], conv2d(x[:, n], w, b)) < 1e-12


@pytest.mark.parametrize("C,N,H,F,k", SHAPES)
def test_conv_backward_matches_loop_reference(C, N, H, F, k):
    x, w, b = conv_case(C, N, H, F, k)
    out, cache = L.conv_forward(E(x), w, b)
    dout = B(np.random.default_rng(3).normal(size=out.shape))
    dx, dw, db = L.conv_backward(E(dout), cache)
    dx = B(dx)
    refs = [conv2d_backward(dout[:, n], x[:, n], w) for n in range(N)]
    for n in range(N):
        assert rel_error(dx[:, n], refs[n][0]) < 1e-12
    assert rel_error(dw, sum(r[1] for r in refs)) < 1e-12
    assert rel_error(db, sum(r[2] for r in refs)) < 1e-12
    none, dw2, db2 = L.conv_backward(E(dout), cache, need_dx=False)
    assert none is None
    assert np.array_equal(dw2, dw) and np.array_equal(db2, db)


@pytest.mark.parametrize("C,N,H,F,k", SHAPES[:2])
def test_conv_backward_matches_finite_differences(C, N, H, F, k):
    x, w, b = conv_case(C, N, H, F, k)
    R = np.random.default_rng(4).normal(size=(F, N, H - k + 1, H - k + 1))
    obj = lambda: np.sum(B(L.conv_forward(E(x), w, b)[0]) * R)  # noqa: E731
    dx, dw, db = L.conv_backward(E(R), L.conv_forward(E(x), w, b)[1])
    assert rel_error(B(dx), numeric_grad(obj, x)) < 1e-6
    assert rel_error(dw, numeric_grad(obj, w)) < 1e-6
    assert rel_error(db, numeric_grad(obj, b)) < 1e-6


@pytest.mark.parametrize("C,N,H,F,k", SHAPES)
def test_conv_curvature_is_backward_with_squared_multipliers(C, N, H, F, k):
    x, w, b = conv_case(C, N, H, F, k)
    out, cache = L.conv_forward(E(x), w, b)
    d2 = B(np.random.default_rng(5).uniform(0, 2, size=out.shape))  # second derivatives are >= 0
    d2x, hw, hb = L.conv_curvature(E(d2), cache)
    d2x = B(d2x)
    sq = [conv2d_backward(d2[:, n], x[:, n] ** 2, w ** 2) for n in range(N)]
    explicit = [conv2d_curvature(d2[:, n], x[:, n], w) for n in range(N)]
    for n in range(N):
        assert rel_error(d2x[:, n], sq[n][0]) < 1e-12
        assert rel_error(d2x[:, n], explicit[n][0]) < 1e-12
    for got, i in ((hw, 1), (hb, 2)):
        assert rel_error(got, sum(r[i] for r in sq)) < 1e-12
        assert rel_error(got, sum(r[i] for r in explicit)) < 1e-12
    assert d2x.min() >= 0 and hw.min() >= 0 and hb.min() >= 0
    none, hw2, hb2 = L.conv_curvature(E(d2), cache, need_dx=False)
    assert none is None and np.array_equal(hw2, hw) and np.array_equal(hb2, hb)


# ---------------------------------------------------------------- subsampling
def sub_case(C=3, N=2, H=8, seed=6):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(C, N, H, H)), rng.normal(size=C), rng.normal(size=C)


@pytest.mark.parametrize("C,N,H", [(2, 2, 6), (3, 3, 8)])
def test_subsample_forward_and_backward_match_loop_reference(C, N, H):
    x, coef, b = sub_case(C, N, H)
    out, cache = L.subsample_forward(E(x), coef, b)
    out = B(out)
    assert out.shape == (C, N, H // 2, H // 2)
    dout = np.random.default_rng(7).normal(size=out.shape)
    dx, dcoef, db = L.subsample_backward(E(dout), cache)
    dx = B(dx)
    refs = [subsample_backward(dout[:, n], x[:, n], coef) for n in range(N)]
    for n in range(N):
        assert rel_error(out[:, n], subsample(x[:, n], coef, b)) < 1e-12
        assert rel_error(dx[:, n], refs[n][0]) < 1e-12
    assert rel_error(dcoef, sum(r[1] for r in refs)) < 1e-12
    assert rel_error(db, sum(r[2] for r in refs)) < 1e-12


def test_subsample_backward_matches_finite_differences():
    x, coef, b = sub_case()
    R = np.random.default_rng(8).normal(size=(3, 2, 4, 4))
    obj = lambda: np.sum(B(L.subsample_forward(E(x), coef, b)[0]) * R)  # noqa: E731
    dx, dcoef, db = L.subsample_backward(E(R), L.subsample_forward(E(x), coef, b)[1])
    assert rel_error(B(dx), numeric_grad(obj, x)) < 1e-6
    assert rel_error(dcoef, numeric_grad(obj, coef)) < 1e-6
    assert rel_error(db, numeric_grad(obj, b)) < 1e-6


def test_subsample_curvature_uses_window_sum_and_squared_coefficient():
    x, coef, b = sub_case()
    out, cache = L.subsample_forward(E(x), coef, b)
    d2 = B(np.random.default_rng(9).uniform(0, 2, size=out.shape))
    d2x, hcoef, hb = L.subsample_curvature(E(d2), cache)
    d2x = B(d2x)
    refs = [subsample_curvature(d2[:, n], x[:, n], coef) for n in range(2)]
    for n in range(2):
        assert rel_error(d2x[:, n], refs[n][0]) < 1e-12
    assert rel_error(hcoef, sum(r[1] for r in refs)) < 1e-12
    assert rel_error(hb, sum(r[2] for r in refs)) < 1e-12
    assert d2x.min() >= 0 and hcoef.min() >= 0 and hb.min() >= 0


# ---------------------------------------------------------------- full connection
def full_case(D=7, M=5, N=3, seed=10):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(D, N)), rng.normal(size=(M, D)), rng.normal(size=M)


def test_full_forward_backward_and_curvature_match_loop_reference():
    x, w, b = full_case()
    out, cache = L.full_forward(x, w, b)
    assert out.shape == (5, 3)
    dout = np.random.default_rng(11).normal(size=out.shape)
    dx, dw, db = L.full_backward(dout, cache)
    d2 = dout ** 2
    d2x, hw, hb = L.full_curvature(d2, cache)
    refs = [full_backward(dout[:, n], x[:, n], w) for n in range(3)]
    sq = [full_backward(d2[:, n], x[:, n] ** 2, w ** 2) for n in range(3)]
    for n in range(3):
        assert rel_error(out[:, n], full(x[:, n], w, b)) < 1e-12
        assert rel_error(dx[:, n], refs[n][0]) < 1e-12
        assert rel_error(d2x[:, n], sq[n][0]) < 1e-12
    for i, (g, h) in enumerate(((dw, hw), (db, hb)), start=1):
        assert rel_error(g, sum(r[i] for r in refs)) < 1e-12
        assert rel_error(h, sum(r[i] for r in sq)) < 1e-12
    assert d2x.min() >= 0 and hw.min() >= 0 and hb.min() >= 0
    none, dw2, db2 = L.full_backward(dout, cache, need_dx=False)
    assert none is None and np.array_equal(dw2, dw) and np.array_equal(db2, db)


def test_full_backward_matches_finite_differences():
    x, w, b = full_case()
    R = np.random.default_rng(12).normal(size=(5, 3))
    obj = lambda: np.sum(L.full_forward(x, w, b)[0] * R)  # noqa: E731
    dx, dw, db = L.full_backward(R, L.full_forward(x, w, b)[1])
    assert rel_error(dx, numeric_grad(obj, x)) < 1e-6
    assert rel_error(dw, numeric_grad(obj, w)) < 1e-6
    assert rel_error(db, numeric_grad(obj, b)) < 1e-6


# ---------------------------------------------------------------- squash
def test_squash_matches_paper_and_its_derivatives():
    a = np.random.default_rng(13).normal(scale=2.0, size=(3, 2, 4, 4))
    out, cache = L.squash_forward(a.copy())
    assert rel_error(out, squash(a)) < 1e-14
    assert abs(L.squash_forward(np.array([1.0]))[0][0] - 1.0) < 1e-4  # f(1) = 1 (App. A)
    assert rel_error(L.squash_derivative(out), squash_prime(a)) < 1e-12
    dout = np.random.default_rng(14).normal(size=a.shape)
    assert rel_error(L.squash_backward(dout, cache), dout * squash_prime(a)) < 1e-12
    d2 = dout ** 2
    h = L.squash_curvature(d2, cache)
    assert rel_error(h, d2 * squash_prime(a) ** 2) < 1e-12 and h.min() >= 0
    obj = lambda: np.sum(L.squash_forward(a)[0] * dout)  # noqa: E731
    assert rel_error(L.squash_backward(dout, cache), numeric_grad(obj, a)) < 1e-6


# ---------------------------------------------------------------- RBF output
def test_rbf_matches_loop_reference_and_finite_differences():
    rng = np.random.default_rng(15)
    x = rng.normal(size=(84, 3))
    centres = rng.choice([-1.0, 1.0], size=(10, 84))
    y, cache = L.rbf_forward(x, centres)
    assert y.shape == (3, 10)
    dy = rng.normal(size=(3, 10))
    dx = L.rbf_backward(dy, cache)
    assert dx.shape == (84, 3)
    for n in range(3):
        assert rel_error(y[n], rbf(x[:, n], centres)) < 1e-12
        assert rel_error(dx[:, n], rbf_backward(dy[n], x[:, n], centres)) < 1e-12
    obj = lambda: np.sum(L.rbf_forward(x, centres)[0] * dy)  # noqa: E731
    assert rel_error(dx, numeric_grad(obj, x)) < 1e-6


@pytest.mark.parametrize("shape", [(1, 32, 32, 16), (6, 14, 14, 3), (16, 5, 5, 7)])
def test_im2col_copies_exactly_the_shifted_windows(shape):
    """Column (c, i, j) of the patch at (r, s) is x[c, r + i, s + j]: the k*k shifted slices, bit for bit."""
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)  # (C, H, W, N)
    C, H, W, N = shape
    Ho, Wo = H - 4, W - 4
    slices = np.stack([x[:, i:i + Ho, j:j + Wo, :] for i in range(5) for j in range(5)], axis=1)  # (C, 25, Ho, Wo, N)
    assert np.array_equal(L.im2col(x, 5), slices.reshape(C * 25, Ho * Wo * N))  # (C,25,Ho,Wo,N) -> (25C, Ho*Wo*N)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_squash_backward_is_bitwise_dout_times_the_derivative(dtype):
    rng = np.random.default_rng(3)
    out, cache = L.squash_forward(rng.standard_normal((6, 28, 28, 5)).astype(dtype))
    dout = rng.standard_normal(out.shape).astype(dtype)
    assert L.squash_backward(dout, cache).tobytes() == (dout * L.squash_derivative(cache["out"])).tobytes()


@pytest.mark.parametrize("shape", [(1, 1, 32, 32), (5, 1, 32, 32), (64, 1, 32, 32), (3, 2, 4, 6)])
def test_batch_last_is_the_transpose(shape):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    got = L.batch_last(x)
    assert got.flags.c_contiguous and np.array_equal(got, x.transpose(1, 2, 3, 0))
