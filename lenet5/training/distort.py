"""Random planar affine distortions of the training digits (paper §III.C).

LeNet-5 was also trained on distorted copies of the digits: "planar affine transformations"
combining horizontal and vertical translation, scaling, squeezing and horizontal shearing.
This module draws such transforms (``random_affine``; ``draw_affine`` draws none when every
maximum is 0) and distorts a batch with them
(``distort_batch``: the draws, then ``nn/warp.affine_warp``'s bilinear resampling). The paper's
training set held the 60,000 originals beside 540,000 distortions; ``keep_originals`` puts such a
share of undistorted digits back into a distorted batch (``draw_originals`` draws which).
Coordinates follow the image: ``x`` is the column index, ``y`` the row index (pointing down).
"""

import numpy as np

from ..errors import Lenet5Error
from ..nn.warp import affine_warp


def _check_rng(rng) -> None:
    """Raise a one-line ``Lenet5Error`` unless ``rng`` is a ``numpy.random.Generator``."""
    if not isinstance(rng, np.random.Generator):
        raise Lenet5Error(f"distort: rng must be a Generator, not {type(rng).__name__}")


def random_affine(n, rng, translate, scale, squeeze, shear, *, shape=(32, 32)) -> np.ndarray:
    """Draw ``n`` random distortions as inverse-mapping affine matrices.

    Per image, five numbers are drawn independently and uniformly (one call
    ``rng.uniform(-1, 1, (n, 5))``, columns in this order, times the maxima):

    - ``tx, ty`` in ``[-translate, +translate]``: shift in pixels (x right, y down);
    - ``s`` in ``[-scale, +scale]``: size change, both axes scaled by ``1 + s``;
    - ``q`` in ``[-squeeze, +squeeze]``: squeeze (area kept),
      ``sx = (1 + s)(1 + q)``, ``sy = (1 + s) / (1 + q)``;
    - ``h`` in ``[-shear, +shear]``: horizontal shear ``x += h * y`` (``y`` from the centre).

    The forward transform (where a digit's point ``p = (x, y)`` goes) is, about the image centre
    ``c = ((W - 1) / 2, (H - 1) / 2)``: scale/squeeze first, then shear, then translate::

        p' = c + t + L (p - c),   L = [[1, h], [0, 1]] @ diag(sx, sy) = [[sx, h sy], [0, sy]]

    The returned matrix is its inverse, mapping OUTPUT pixel coordinates to INPUT coordinates
    (what a resampler needs): ``p = M[:, :2] @ p' + M[:, 2]`` with ``M[:, :2] = L^-1 =
    [[1/sx, -h/sx], [0, 1/sy]]`` and ``M[:, 2] = c - L^-1 (c + t)``. All maxima 0 gives identities.

    Parameters
    ----------
    n : int
        Number of matrices.
    rng : numpy.random.Generator
        The only source of randomness.
    translate, scale, squeeze, shear : float
        Maxima, in the ranges that ``pipeline/config.py`` allows for the ``distort:`` block.
    shape : (int, int)
        Image ``(H, W)``, fixing the centre ``c``.

    Returns
    -------
    ndarray of shape ``(n, 2, 3)``, float64
        Rows ``[x_in, y_in] = M @ [x_out, y_out, 1]``.
    """
    _check_rng(rng)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise Lenet5Error(f"distort: n must be an integer >= 0, got {n!r}")
    H, W = (int(d) for d in shape)
    cx, cy = (W - 1) / 2.0, (H - 1) / 2.0

    u = rng.uniform(-1.0, 1.0, size=(int(n), 5))  # (n, 5): tx, ty, s, q, h
    tx, ty = u[:, 0] * translate, u[:, 1] * translate
    s, q, h = u[:, 2] * scale, u[:, 3] * squeeze, u[:, 4] * shear
    sx, sy = (1.0 + s) * (1.0 + q), (1.0 + s) / (1.0 + q)

    mats = np.zeros((int(n), 2, 3))  # (n, 2, 3)
    mats[:, 0, 0] = 1.0 / sx
    mats[:, 0, 1] = -h / sx
    mats[:, 1, 1] = 1.0 / sy
    # M[:, 2] = c - L^-1 (c + t)
    mats[:, 0, 2] = cx - (mats[:, 0, 0] * (cx + tx) + mats[:, 0, 1] * (cy + ty))
    mats[:, 1, 2] = cy - mats[:, 1, 1] * (cy + ty)
    return mats


def distort_batch(images, rng, translate, scale, squeeze, shear, fill: float = -0.1) -> np.ndarray:
    """Distort every image by its own random affine transform (``random_affine`` + ``affine_warp``).

    Deterministic for a given ``rng`` state. When all four maxima are 0 it returns an exact copy
    and draws nothing from ``rng``.

    Parameters
    ----------
    images : ndarray of shape ``(N, C, H, W)``, float32 or float64
    rng : numpy.random.Generator
    translate, scale, squeeze, shear : float
        Maxima, as in ``random_affine`` (the ``distort:`` block of params.yaml).
    fill : float
        Background value read outside the image.

    Returns
    -------
    ndarray of shape ``(N, C, H, W)``, same dtype as ``images``.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise Lenet5Error(f"distort: images must be (N, C, H, W), got shape {images.shape}")
    _check_rng(rng)
    mats = draw_affine(images.shape[0], rng, translate, scale, squeeze, shear, shape=images.shape[-2:])
    if mats is None:
        if images.dtype not in (np.float32, np.float64):
            raise Lenet5Error(f"distort: images must be float32/float64, got {images.dtype}")
        return images.copy()
    return affine_warp(images, mats, fill)


def draw_affine(n, rng, translate, scale, squeeze, shear, *, shape=(32, 32)):
    """``random_affine``'s ``(n, 2, 3)`` matrices, or None, drawing nothing, when all four maxima
    are 0 (the images stay as they are)."""
    maxima = dict(translate=float(translate), scale=float(scale), squeeze=float(squeeze), shear=float(shear))
    if not any(maxima.values()):
        return None
    return random_affine(n, rng, **maxima, shape=shape)


def keep_originals(distorted, originals, rng, share) -> np.ndarray:
    """Put a random ``share`` of the originals back into a distorted batch (in place, returned).

    Each image is kept undistorted with probability ``share``, drawn independently (one call
    ``rng.random(N)``). The paper trained on 60,000 originals plus 540,000 distorted copies
    (§III.C), a share of 0.1. A share of 0 returns ``distorted`` unchanged and draws nothing.

    Parameters
    ----------
    distorted, originals : ndarray of shape ``(N, C, H, W)``, the same shape and dtype
    rng : numpy.random.Generator
    share : float in ``[0, 1]`` (checked with the other parameters in ``pipeline/config.py``)
    """
    if distorted.shape != originals.shape or distorted.dtype != originals.dtype:
        raise Lenet5Error(f"distort: {distorted.shape} {distorted.dtype} distorted images for "
                          f"{originals.shape} {originals.dtype} originals")
    keep = draw_originals(len(distorted), rng, share)
    if keep is not None:
        distorted[keep] = originals[keep]
    return distorted


def draw_originals(n, rng, share):
    """Which of ``n`` images are kept undistorted: ``(n,)`` bools, each True with probability
    ``share`` (one call ``rng.random(n)``); None for a share of 0, drawing nothing."""
    _check_rng(rng)
    share = float(share)
    if share == 0:
        return None
    return rng.random(n) < share  # (n,) True: shown as it is
