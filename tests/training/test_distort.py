"""Tests for lenet5.training.distort (random affine distortions) and lenet5.nn.warp (bilinear resampling).

The vectorised warp is checked against a plain loop sampler written here, against exact integer
shifts, and the drawn matrices are decomposed back into their parameters to check the ranges.
"""

import math

import numpy as np
import pytest

from lenet5.nn import warp
from lenet5.training import distort
from lenet5.training.distort import affine_warp, distort_batch, random_affine
from lenet5.errors import Lenet5Error

FILL = -0.1
PARAMS = dict(translate=2.0, scale=0.1, squeeze=0.1, shear=0.2)  # the params.yaml defaults


def reference_warp(images, mats, fill=FILL):
    """Bilinear sampler, one pixel at a time: output (i, j) reads input at M @ (j, i, 1)."""
    N, C, H, W = images.shape
    out = np.empty(images.shape, dtype=np.float64)

    def tap(n, c, y, x):
        if 0 <= y < H and 0 <= x < W:
            return float(images[n, c, y, x])
        return fill

    for n in range(N):
        m = mats[n]
        for i in range(H):
            for j in range(W):
                x = m[0, 0] * j + m[0, 1] * i + m[0, 2]
                y = m[1, 0] * j + m[1, 1] * i + m[1, 2]
                x0, y0 = math.floor(x), math.floor(y)
                fx, fy = x - x0, y - y0
                for c in range(C):
                    out[n, c, i, j] = (
                        (1 - fx) * (1 - fy) * tap(n, c, y0, x0)
                        + fx * (1 - fy) * tap(n, c, y0, x0 + 1)
                        + (1 - fx) * fy * tap(n, c, y0 + 1, x0)
                        + fx * fy * tap(n, c, y0 + 1, x0 + 1)
                    )
    return out


def digits(n, dtype=np.float32, size=32, seed=0):
    """(n, 1, size, size) images: -0.1 background, a random 'digit' in the central 8x8."""
    rng = np.random.default_rng(seed)
    x = np.full((n, 1, size, size), FILL, dtype=dtype)
    lo = size // 2 - 4
    x[:, :, lo : lo + 8, lo : lo + 8] = rng.uniform(-0.1, 1.175, (n, 1, 8, 8))
    return x


def decompose(mats, shape=(32, 32)):
    """Recover (tx, ty, s, q, h) from inverse-mapping matrices, per the random_affine docstring."""
    H, W = shape
    c = np.array([(W - 1) / 2, (H - 1) / 2])
    L = np.linalg.inv(mats[:, :, :2])  # (n, 2, 2) forward linear part
    sx, sy = L[:, 0, 0], L[:, 1, 1]
    h = L[:, 0, 1] / sy
    s = np.sqrt(sx * sy) - 1
    q = np.sqrt(sx / sy) - 1
    t = np.einsum("nij,nj->ni", L, c - mats[:, :, 2]) - c  # (n, 2)
    return t[:, 0], t[:, 1], s, q, h, L[:, 1, 0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_identity_matrices_give_exact_copy(dtype):
    x = np.random.default_rng(1).standard_normal((5, 2, 7, 11)).astype(dtype)
    eye = np.tile(np.eye(2, 3), (5, 1, 1))  # (5, 2, 3)
    y = affine_warp(x, eye)
    assert y.dtype == dtype and y.shape == x.shape
    assert np.array_equal(y, x)
    assert y is not x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dx, dy", [(1, 0), (0, 2), (-3, 1), (2, -2), (-1, -3)])
def test_integer_translation_shifts_exactly(dtype, dx, dy):
    x = np.full((3, 1, 16, 20), FILL, dtype=dtype)
    x[:, :, 4:12, 4:16] = np.random.default_rng(2).uniform(0, 1, (3, 1, 8, 12))
    mats = np.tile(np.array([[1.0, 0.0, -dx], [0.0, 1.0, -dy]]), (3, 1, 1))  # (3, 2, 3)
    y = affine_warp(x, mats, fill=FILL)
    # the -0.1 border is wider than the shift, so a roll moves in only background
    assert np.array_equal(y, np.roll(x, (dy, dx), axis=(2, 3)))


def test_translation_into_the_void_reads_fill():
    x = np.random.default_rng(3).uniform(0, 1, (2, 1, 6, 6))
    mats = np.tile(np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]]), (2, 1, 1))  # shift left 2, down 1
    y = affine_warp(x, mats, fill=0.5)
    expected = np.full_like(x, 0.5)
    expected[:, :, 1:, :4] = x[:, :, :5, 2:]
    assert np.array_equal(y, expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_loop_reference(seed):
    rng = np.random.default_rng(seed)
    N, C, H, W = 4, 2, 6, 9  # non-square, two channels sharing a matrix
    x = rng.standard_normal((N, C, H, W))
    mats = np.zeros((N, 2, 3))
    mats[:, :, :2] = np.eye(2) + 0.4 * rng.standard_normal((N, 2, 2))
    mats[:, :, 2] = 3.0 * rng.standard_normal((N, 2))  # many samples fall outside the image
    ref = reference_warp(x, mats)
    np.testing.assert_allclose(affine_warp(x, mats), ref, rtol=1e-6, atol=1e-12)
    # float32 computes its coordinates in float32: same answer to float32 precision
    y32 = affine_warp(x.astype(np.float32), mats)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, ref, rtol=0, atol=1e-4)


def test_matches_loop_reference_for_drawn_distortions():
    x = digits(6, np.float64, size=12)
    mats = random_affine(6, np.random.default_rng(4), 2.0, 0.3, 0.3, 0.5, shape=(12, 12))
    np.testing.assert_allclose(affine_warp(x, mats), reference_warp(x, mats), rtol=1e-6, atol=1e-12)


def test_chunking_does_not_change_the_result(monkeypatch):
    x = digits(50, np.float64, size=10)
    mats = random_affine(50, np.random.default_rng(5), **PARAMS, shape=(10, 10))
    whole = affine_warp(x, mats)
    monkeypatch.setattr(warp, "CHUNK", 7)
    assert np.array_equal(affine_warp(x, mats), whole)


def test_ranges_respected_and_covered():
    n = 20000
    mats = random_affine(n, np.random.default_rng(6), **PARAMS)
    assert mats.shape == (n, 2, 3) and mats.dtype == np.float64
    tx, ty, s, q, h, lower = decompose(mats)
    assert np.allclose(lower, 0.0, atol=1e-12)  # no vertical shear
    cases = [("tx", tx, 2.0), ("ty", ty, 2.0), ("s", s, 0.1), ("q", q, 0.1), ("h", h, 0.2)]
    for name, v, vmax in cases:
        assert np.all(np.abs(v) <= vmax + 1e-9), name
        assert np.max(v) > 0.98 * vmax and np.min(v) < -0.98 * vmax, name  # the whole range is used
        assert abs(np.mean(v)) < 0.05 * vmax, name  # symmetric


def test_parameters_are_the_documented_draws():
    maxima = np.array([2.0, 2.0, 0.1, 0.1, 0.2])  # tx, ty, s, q, h
    mats = random_affine(300, np.random.default_rng(17), **PARAMS, shape=(28, 36))
    u = np.random.default_rng(17).uniform(-1.0, 1.0, size=(300, 5))  # the docstring's one call
    got = np.stack(decompose(mats, shape=(28, 36))[:5], 1)  # (300, 5)
    np.testing.assert_allclose(got, u * maxima, rtol=0, atol=1e-12)


def test_each_parameter_alone():
    rng = np.random.default_rng(7)
    L = np.linalg.inv(random_affine(500, rng, 0, 0.2, 0, 0)[:, :, :2])
    assert np.allclose(L[:, 0, 0], L[:, 1, 1]) and np.allclose(L[:, 0, 1], 0)  # scale: both axes
    L = np.linalg.inv(random_affine(500, rng, 0, 0, 0.2, 0)[:, :, :2])
    assert np.allclose(np.linalg.det(L), 1.0) and np.allclose(L[:, 0, 1], 0)  # squeeze keeps area
    assert np.ptp(L[:, 0, 0]) > 0.3
    L = np.linalg.inv(random_affine(500, rng, 0, 0, 0, 0.3)[:, :, :2])
    assert np.allclose(L[:, 0, 0], 1) and np.allclose(L[:, 1, 1], 1)  # shear: x += h * y
    assert np.all(np.abs(L[:, 0, 1]) <= 0.3) and np.ptp(L[:, 0, 1]) > 0.5


def test_zero_maxima_give_identity_matrices():
    mats = random_affine(10, np.random.default_rng(8), 0, 0, 0, 0, shape=(28, 20))
    assert np.array_equal(mats, np.tile(np.eye(2, 3), (10, 1, 1)))


def test_translation_moves_the_centre_of_mass_by_t():
    x = digits(20, np.float64)
    mats = random_affine(20, np.random.default_rng(9), 2.0, 0, 0, 0)
    y = affine_warp(x, mats)
    tx, ty, *_ = decompose(mats)
    yy, xx = np.mgrid[0:32, 0:32]

    def centroid(im):
        w = im[:, 0] + 0.1  # (N, 32, 32), zero on the background
        return (w * xx).sum((1, 2)) / w.sum((1, 2)), (w * yy).sum((1, 2)) / w.sum((1, 2))

    (cx0, cy0), (cx1, cy1) = centroid(x), centroid(y)
    np.testing.assert_allclose(cx1 - cx0, tx, atol=1e-9)  # positive tx moves the digit right
    np.testing.assert_allclose(cy1 - cy0, ty, atol=1e-9)  # positive ty moves it down


def test_forward_transform_moves_a_dot_as_documented():
    x = np.full((30, 1, 32, 32), FILL)
    p = np.array([20.0, 11.0])  # (x, y) of a small dot away from the centre
    x[:, 0, 10:13, 19:22] = 1.0
    mats = random_affine(30, np.random.default_rng(10), 2.0, 0.2, 0.2, 0.3)
    y = affine_warp(x, mats)
    c = np.array([15.5, 15.5])
    L = np.linalg.inv(mats[:, :, :2])
    tx, ty, *_ = decompose(mats)
    expected = c + np.stack([tx, ty], 1) + np.einsum("nij,j->ni", L, p - c)  # (30, 2)
    yy, xx = np.mgrid[0:32, 0:32]
    w = y[:, 0] + 0.1
    got = np.stack([(w * xx).sum((1, 2)), (w * yy).sum((1, 2))], 1) / w.sum((1, 2))[:, None]
    np.testing.assert_allclose(got, expected, atol=0.15)  # bilinear blur moves it a little
    wrong = np.einsum("nij,j->ni", mats[:, :, :2], p) + mats[:, :, 2]  # mats read as forward maps
    assert np.max(np.abs(got - wrong)) > 1.0


def test_same_seed_same_output_different_seed_different():
    x = digits(40)
    a = distort_batch(x, np.random.default_rng(11), **PARAMS)
    b = distort_batch(x, np.random.default_rng(11), **PARAMS)
    c = distort_batch(x, np.random.default_rng(12), **PARAMS)
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, x)
    assert np.array_equal(x, digits(40))  # input untouched


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_and_shape_preserved(dtype):
    x = digits(9, dtype)
    y = distort_batch(x, np.random.default_rng(13), **PARAMS)
    assert y.dtype == dtype and y.shape == x.shape


def test_zero_maxima_return_exact_copy_and_draw_nothing():
    x = np.random.default_rng(14).standard_normal((6, 1, 32, 32)).astype(np.float32)
    x[0, 0, 0, 0] = -0.0
    rng = np.random.default_rng(15)
    state = rng.bit_generator.state
    y = distort_batch(x, rng, 0, 0.0, 0, 0.0)
    assert y.tobytes() == x.tobytes() and y is not x
    assert rng.bit_generator.state == state


def test_background_stays_fill_far_from_the_digit():
    y = distort_batch(digits(200), np.random.default_rng(16), **PARAMS)
    ring = np.ones((32, 32), dtype=bool)
    ring[5:27, 5:27] = False  # the digit (centre 8x8) can move at most ~5 px outward
    assert np.all(y[:, 0][:, ring] == np.float32(FILL))
    assert np.all(y <= 1.175 + 1e-6) and np.all(y >= FILL - 1e-6)  # convex combinations


@pytest.mark.parametrize(
    "call",
    [
        lambda x, r: distort_batch(x, 0, **PARAMS),
        lambda x, r: distort_batch(x[:, 0], r, **PARAMS),
        lambda x, r: distort_batch(x.astype(np.uint8), r, **PARAMS),
        lambda x, r: affine_warp(x, np.zeros((3, 2, 3))),
        lambda x, r: affine_warp(x, np.full((4, 2, 3), np.inf)),
        lambda x, r: affine_warp(x, np.full((4, 2, 3), 1e39)),  # finite in float64, not in float32
        lambda x, r: random_affine(-1, r, **PARAMS),
    ],
)
def test_bad_input_raises_one_line_error(call):
    with pytest.raises(Lenet5Error) as e:
        call(digits(4), np.random.default_rng(0))
    assert "\n" not in str(e.value) and "distort" in str(e.value)


def test_keep_originals_puts_back_about_the_share_per_image():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4000, 1, 4, 4)).astype(np.float32)
    d = distort_batch(x, np.random.default_rng(4), **PARAMS)
    out = distort.keep_originals(d.copy(), x, np.random.default_rng(5), 0.1)
    kept = np.all(out == x, axis=(1, 2, 3))  # (N,) undistorted images
    moved = np.all(out == d, axis=(1, 2, 3))  # (N,) distorted images
    assert np.all(kept ^ moved)  # each image is whole: one or the other
    assert 0.08 < kept.mean() < 0.12  # 400 expected, sd 19
    again = distort.keep_originals(d.copy(), x, np.random.default_rng(5), 0.1)
    assert np.array_equal(out, again)


def test_keep_originals_share_0_draws_nothing_and_1_keeps_all():
    x = np.zeros((5, 1, 4, 4))
    d = np.ones((5, 1, 4, 4))
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    assert distort.keep_originals(d, x, rng, 0.0) is d and np.all(d == 1)
    assert rng.bit_generator.state == state
    assert np.all(distort.keep_originals(d, x, rng, 1.0) == 0)


@pytest.mark.parametrize("share, shape, message", [
    (0.1, (4, 1, 4, 4), "distort: (5, 1, 4, 4) float64 distorted images for (4, 1, 4, 4) float64 originals"),
])
def test_keep_originals_rejects_bad_input(share, shape, message):
    with pytest.raises(Lenet5Error) as e:
        distort.keep_originals(np.ones((5, 1, 4, 4)), np.zeros(shape), np.random.default_rng(0), share)
    assert str(e.value) == message
