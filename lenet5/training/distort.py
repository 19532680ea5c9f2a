"""Random planar affine distortions of the training digits (paper §III.C).

LeNet-5 was also trained on distorted copies of the digits: "planar affine transformations"
combining horizontal and vertical translation, scaling, squeezing and horizontal shearing.
This module draws such transforms (``random_affine``), resamples images through them with
bilinear interpolation (``affine_warp``), and does both at once (``distort_batch``). The paper's
training set held the 60,000 originals beside 540,000 distortions; ``keep_originals`` puts such a
share of undistorted digits back into a distorted batch.

Pure NumPy, vectorised over the batch; batches are resampled in chunks of ``CHUNK`` images so
the temporaries stay in cache (about 0.5-1 s per 60,000 32x32 float32 images on one core).
Coordinates follow the image: ``x`` is the column index, ``y`` the row index (pointing down),
both in pixels, with pixel ``(i, j)`` sampled at ``(x, y) = (j, i)``.
"""

import numpy as np

from ..errors import Lenet5Error

CHUNK = 128  # images resampled per step: keeps the ~10 temporaries (0.5-1 MB each) in cache


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


def _warp_chunk(images: np.ndarray, mats: np.ndarray, fill) -> np.ndarray:
    """Bilinear warp of ``(n, H, W)`` images by ``(n, 2, 3)`` matrices (already checked)."""
    n, H, W = images.shape
    dt = images.dtype  # coordinates are computed in the image dtype
    Wp = W + 3  # padded width: 1 fill column before, 2 after
    padded = np.full((n, H + 3, Wp), fill, dtype=dt)  # (n, H+3, W+3)
    padded[:, 1 : H + 1, 1 : W + 1] = images
    flat = padded.reshape(-1)  # (n * (H+3) * (W+3),)

    m = mats.astype(dt)
    cols = np.arange(W, dtype=dt)
    rows = np.arange(H, dtype=dt)

    def coord(k: int) -> tuple[np.ndarray, np.ndarray]:
        """Input coordinate along axis k (0: x, 1: y) of every output pixel: (floor, fraction)."""
        along_rows = m[:, k, 1, None] * rows + m[:, k, 2, None]  # (n, H)
        along_cols = m[:, k, 0, None] * cols  # (n, W)
        z = along_rows[:, :, None] + along_cols[:, None, :]  # (n, H, W)
        # Clamp to [-1, size]: any point further out reads only fill, exactly like the clamp point
        np.clip(z, -1.0, float(W if k == 0 else H), out=z)
        z0 = np.floor(z)
        np.subtract(z, z0, out=z)
        return z0, z

    x0, fx = coord(0)
    y0, fy = coord(1)
    # flat index of the top-left tap: image base + (y0 + 1) * Wp + (x0 + 1)
    np.multiply(y0, Wp, out=y0)
    np.add(y0, x0, out=y0)
    idx = y0.astype(np.intp)  # (n, H, W)
    idx += (np.arange(n, dtype=np.intp) * ((H + 3) * Wp) + Wp + 1)[:, None, None]

    # The four taps share one index array, read from views of flat shifted by 0, 1, Wp, Wp + 1
    v00 = np.take(flat, idx)
    v01 = np.take(flat[1:], idx)
    v10 = np.take(flat[Wp:], idx)
    v11 = np.take(flat[Wp + 1 :], idx)
    # top = v00 + fx (v01 - v00); bottom likewise; out = top + fy (bottom - top)
    # (a zero fraction leaves a tap value bit-exact, so integer shifts copy exactly)
    np.subtract(v01, v00, out=v01)
    np.multiply(v01, fx, out=v01)
    np.add(v00, v01, out=v00)
    np.subtract(v11, v10, out=v11)
    np.multiply(v11, fx, out=v11)
    np.add(v10, v11, out=v10)
    np.subtract(v10, v00, out=v10)
    np.multiply(v10, fy, out=v10)
    np.add(v00, v10, out=v00)
    return v00


def affine_warp(images: np.ndarray, mats: np.ndarray, fill: float = -0.1) -> np.ndarray:
    """Resample each image through its affine matrix with bilinear interpolation.

    Output pixel ``(i, j)`` reads the input at ``(x, y) = M @ (j, i, 1)``, interpolating the four
    surrounding pixels; taps outside the image read ``fill`` (the background of the normalised
    digits, -0.1). Coordinates are computed in the image dtype.

    Parameters
    ----------
    images : ndarray of shape ``(N, C, H, W)``, float32 or float64
    mats : ndarray of shape ``(N, 2, 3)``
        Output-to-input matrices, e.g. from ``random_affine``; one per image (shared by channels).
    fill : float
        Value read outside the image.

    Returns
    -------
    ndarray of shape ``(N, C, H, W)``, same dtype as ``images`` (a new array).
    """
    images = np.asarray(images)
    mats = np.asarray(mats)
    if images.ndim != 4 or images.dtype not in (np.float32, np.float64):
        raise Lenet5Error(
            f"distort: images must be (N, C, H, W) float32/float64, "
            f"got {images.shape} {images.dtype}"
        )
    N, C, H, W = images.shape
    if mats.shape != (N, 2, 3) or not np.issubdtype(mats.dtype, np.number):
        raise Lenet5Error(f"distort: mats must be ({N}, 2, 3) numbers, got {mats.shape}")
    if not np.all(np.isfinite(mats)):
        raise Lenet5Error("distort: mats must be finite, got NaN or inf")
    if not np.isfinite(fill):
        raise Lenet5Error(f"distort: fill must be finite, got {fill!r}")

    planes = images.reshape(N * C, H, W)  # (N*C, H, W)
    plane_mats = np.repeat(mats.astype(np.float64), C, axis=0)  # (N*C, 2, 3)
    out = np.empty_like(planes)
    for start in range(0, N * C, CHUNK):
        stop = min(start + CHUNK, N * C)
        out[start:stop] = _warp_chunk(planes[start:stop], plane_mats[start:stop], fill)
    return out.reshape(N, C, H, W)  # (N, C, H, W)


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
    maxima = dict(translate=float(translate), scale=float(scale), squeeze=float(squeeze), shear=float(shear))
    if not any(maxima.values()):
        if images.dtype not in (np.float32, np.float64):
            raise Lenet5Error(f"distort: images must be float32/float64, got {images.dtype}")
        return images.copy()
    mats = random_affine(images.shape[0], rng, **maxima, shape=images.shape[-2:])
    return affine_warp(images, mats, fill)


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
    _check_rng(rng)
    share = float(share)
    if distorted.shape != originals.shape or distorted.dtype != originals.dtype:
        raise Lenet5Error(f"distort: {distorted.shape} {distorted.dtype} distorted images for "
                          f"{originals.shape} {originals.dtype} originals")
    if share == 0:
        return distorted
    keep = rng.random(len(distorted)) < share  # (N,) True: shown as it is
    distorted[keep] = originals[keep]
    return distorted
