"""Tests of lenet5.nn.window: convolution + subsampling over 2x2 windows, against nn.layers and differences.

``layers.conv_forward`` (itself checked against the loop reference in test_layers.py) gives every
output of a 5x5 convolution; the windowed form must give the same numbers, regrouped by 2x2 window,
and its backward and curvature passes the same gradients, up to rounding (float64, 1e-12). The
gradients are also checked against central finite differences.
"""

import numpy as np
import pytest

from conftest import numeric_grad, rel_error
from lenet5.nn import layers as L
from lenet5.nn import window as Win

SHAPES = [(1, 2, 8, 3), (2, 3, 10, 2), (3, 2, 14, 4)]  # (C, N, H, F): square maps, H even (C3 reads 14x14)


def to_windows(a):
    """A conv output ``(F, 2Ho, 2Wo, N)`` -> the windowed layout ``(4F, Ho*Wo*N)``, rows (f, dr, ds)."""
    F, H2, W2, N = a.shape
    r = a.reshape(F, H2 // 2, 2, W2 // 2, 2, N).transpose(0, 2, 4, 1, 3, 5)  # -> (F, dr, ds, Ho, Wo, N)
    return np.ascontiguousarray(r).reshape(4 * F, -1)


def case(C, N, H, F, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(C, H, H, N)), rng.normal(size=(F, C, 5, 5)), rng.normal(size=F)


@pytest.mark.parametrize("C,N,H,F", SHAPES)
def test_window_columns_are_the_6x6_patches_at_stride_2_and_col2im_their_adjoint(C, N, H, F):
    x = case(C, N, H, F)[0]
    Ho = (H - 4) // 2
    cols = Win.window_cols(x)
    assert cols.shape == (36 * C, Ho * Ho * N)
    rng = np.random.default_rng(1)
    for c, a, b, u, v, i, j, n in [tuple(rng.integers(0, m) for m in (C, 2, 2, 3, 3, Ho, Ho, N)) for _ in range(50)]:
        row, col = (((c * 2 + a) * 2 + b) * 3 + u) * 3 + v, (i * Ho + j) * N + n
        assert cols[row, col] == x[c, 2 * i + 2 * u + a, 2 * j + 2 * v + b, n]
    y = rng.normal(size=cols.shape)
    lhs, rhs = np.sum(cols * y), np.sum(x * Win.window_col2im(y, x.shape))
    assert abs(lhs - rhs) <= 1e-12 * max(abs(lhs), 1.0)


def test_window_weights_and_their_fold_are_adjoint():
    rng = np.random.default_rng(2)
    w, d = rng.normal(size=(4, 3, 5, 5)), rng.normal(size=(16, 108))
    ww = Win.window_weights(w)
    assert ww.shape == (16, 108) and np.count_nonzero(ww) == 4 * w.size
    lhs, rhs = np.sum(ww * d), np.sum(w * Win.fold_window_weights(d))
    assert abs(lhs - rhs) <= 1e-12 * abs(lhs)


def fold_by_slices(dw):
    """The fold written out on the 6x6 frames: the four offsets' kernels summed in order."""
    F, C = dw.shape[0] // 4, dw.shape[1] // 36
    d = dw.reshape(F, 2, 2, C, 2, 2, 3, 3)  # (4F, 36C) -> (F,2,2,C,a,b,u,v)
    d = d.transpose(0, 1, 2, 3, 6, 4, 7, 5).reshape(F, 2, 2, C, 6, 6)  # -> (F,2,2,C,u,a,v,b) -> (F,2,2,C,6,6)
    out = d[:, 0, 0, :, 0:5, 0:5] + d[:, 0, 1, :, 0:5, 1:6]
    out += d[:, 1, 0, :, 1:6, 0:5]
    out += d[:, 1, 1, :, 1:6, 1:6]
    return out


@pytest.mark.parametrize("F, C, dtype", [(6, 1, np.float32), (16, 6, np.float32), (2, 3, np.float64)])
def test_the_gathers_give_the_frames_built_step_by_step_bit_for_bit(F, C, dtype):
    rng = np.random.default_rng(3)
    w, d = rng.normal(size=(F, C, 5, 5)).astype(dtype), rng.normal(size=(36 * C, 4 * F)).astype(dtype)
    assert Win.window_weights(w).tobytes() == Win._frame(w).tobytes()
    for dw in (d.T, np.ascontiguousarray(d.T)):  # a product's transpose (as in conv_backward), or not
        got = Win.fold_window_weights(dw)
        assert got.dtype == dtype and got.tobytes() == fold_by_slices(np.ascontiguousarray(dw)).tobytes()


@pytest.mark.parametrize("C,N,H,F", SHAPES)
def test_conv_forward_gives_every_output_of_the_convolution(C, N, H, F):
    x, w, b = case(C, N, H, F)
    out, _ = Win.conv_forward(x, w, b)
    assert rel_error(out, to_windows(L.conv_forward(x, w, b)[0])) < 1e-12


@pytest.mark.parametrize("C,N,H,F", SHAPES)
@pytest.mark.parametrize("curvature", [False, True])
def test_conv_backward_and_curvature_match_the_plain_convolution(C, N, H, F, curvature):
    x, w, b = case(C, N, H, F)
    std_out, std_cache = L.conv_forward(x, w, b)
    _, cache = Win.conv_forward(x, w, b)
    d = np.random.default_rng(3).uniform(0, 2, size=std_out.shape)  # >= 0, as second derivatives are
    plain, windowed = (L.conv_curvature, Win.conv_curvature) if curvature else (L.conv_backward, Win.conv_backward)
    want = plain(d, std_cache)
    got = windowed(to_windows(d), cache)
    for g, r in zip(got, want):
        assert rel_error(g, r) < 1e-12
    none, dw, db = windowed(to_windows(d), cache, need_dx=False)
    assert none is None and np.array_equal(dw, got[1]) and np.array_equal(db, got[2])


def test_conv_backward_matches_finite_differences():
    x, w, b = case(2, 2, 10, 3)
    R = np.random.default_rng(4).normal(size=(12, 9 * 2))
    obj = lambda: np.sum(Win.conv_forward(x, w, b)[0] * R)  # noqa: E731
    dx, dw, db = Win.conv_backward(R, Win.conv_forward(x, w, b)[1])
    assert rel_error(dx, numeric_grad(obj, x)) < 1e-6
    assert rel_error(dw, numeric_grad(obj, w)) < 1e-6
    assert rel_error(db, numeric_grad(obj, b)) < 1e-6


@pytest.mark.parametrize("curvature", [False, True])
def test_subsample_matches_the_plain_subsampling(curvature):
    rng = np.random.default_rng(5)
    x, coef, b = rng.normal(size=(3, 6, 6, 2)), rng.normal(size=3), rng.normal(size=3)  # (F, 2Ho, 2Wo, N)
    want, std_cache = L.subsample_forward(x, coef, b)
    got, cache = Win.subsample_forward(to_windows(x), coef, b, want.shape)
    assert got.shape == want.shape and rel_error(got, want) < 1e-12
    d = rng.uniform(0, 2, size=want.shape)
    plain, windowed = ((L.subsample_curvature, Win.subsample_curvature) if curvature
                       else (L.subsample_backward, Win.subsample_backward))
    (dx, dc, db), (rx, rc, rb) = windowed(d, cache), plain(d, std_cache)
    assert rel_error(dx, to_windows(rx)) < 1e-12
    assert rel_error(dc, rc) < 1e-12 and rel_error(db, rb) < 1e-12


def test_subsample_backward_matches_finite_differences():
    rng = np.random.default_rng(6)
    x, coef, b = rng.normal(size=(8, 18)), rng.normal(size=2), rng.normal(size=2)  # (4F, Ho*Wo*N)
    shape = (2, 3, 3, 2)
    R = rng.normal(size=shape)
    obj = lambda: np.sum(Win.subsample_forward(x, coef, b, shape)[0] * R)  # noqa: E731
    dx, dcoef, db = Win.subsample_backward(R, Win.subsample_forward(x, coef, b, shape)[1])
    assert rel_error(dx, numeric_grad(obj, x)) < 1e-6
    assert rel_error(dcoef, numeric_grad(obj, coef)) < 1e-6
    assert rel_error(db, numeric_grad(obj, b)) < 1e-6


def test_maps_that_are_not_square():
    rng = np.random.default_rng(7)
    x, w, b = rng.normal(size=(2, 8, 12, 3)), rng.normal(size=(3, 2, 5, 5)), rng.normal(size=3)  # (C, H, W, N)
    cols = Win.window_cols(x)
    assert cols.shape == (72, 2 * 4 * 3)  # Ho = 2, Wo = 4
    assert cols[(((1 * 2 + 1) * 2 + 0) * 3 + 2) * 3 + 1, (1 * 4 + 3) * 3 + 2] == x[1, 2 + 4 + 1, 6 + 2 + 0, 2]
    y = rng.normal(size=cols.shape)
    assert np.sum(cols * y) == pytest.approx(np.sum(x * Win.window_col2im(y, x.shape)), rel=1e-12)
    std_out, std_cache = L.conv_forward(x, w, b)
    out, cache = Win.conv_forward(x, w, b)
    assert rel_error(out, to_windows(std_out)) < 1e-12
    d = rng.normal(size=std_out.shape)
    for g, r in zip(Win.conv_backward(to_windows(d), cache), L.conv_backward(d, std_cache)):
        assert rel_error(g, r) < 1e-12
