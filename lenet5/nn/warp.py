"""Bilinear resampling of images through per-image affine maps (the distortions of paper §III.C).

``affine_warp`` resamples each image through its own output-to-input matrix; ``warp_except`` does
the same but leaves chosen images as they are. The random matrices are drawn in
``training/distort.py``; resampling lives here, with the network's other math below the model, so
that the processes sharing a batch (``lenet5/parallel``) can resample it (``model.py``): every
image is resampled on its own, so the result is the same bytes whichever process or chunk
resamples it.

Pure NumPy, vectorised over the batch; batches are resampled in chunks of ``CHUNK`` images so
the temporaries stay in cache (about 0.5-1 s per 60,000 32x32 float32 images on one core).
Coordinates follow the image: ``x`` is the column index, ``y`` the row index (pointing down),
both in pixels, with pixel ``(i, j)`` sampled at ``(x, y) = (j, i)``.
"""

import numpy as np

from ..errors import Lenet5Error

CHUNK = 128  # images resampled per step: keeps the ~10 temporaries (0.5-1 MB each) in cache
MAX_ENTRY = 1e6  # largest matrix entry accepted: the taps' indices are then always in range


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

    # The four taps share one index array, read from views of flat shifted by 0, 1, Wp, Wp + 1.
    # Every index is in range (matrices bounded by MAX_ENTRY, coordinates clamped to the padded
    # frame), so mode="clip" changes
    # nothing but skips the bounds errors' bookkeeping: 2x faster than the default (18 vs 33 us
    # per tap for 16 images).
    v00 = np.take(flat, idx, mode="clip")
    v01 = np.take(flat[1:], idx, mode="clip")
    v10 = np.take(flat[Wp:], idx, mode="clip")
    v11 = np.take(flat[Wp + 1 :], idx, mode="clip")
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


def _checked(images, mats, fill):
    """``(images, mats)`` as arrays, or a one-line ``Lenet5Error`` naming what is wrong."""
    images = np.asarray(images)
    mats = np.asarray(mats)
    if images.ndim != 4 or images.dtype not in (np.float32, np.float64):
        raise Lenet5Error(
            f"distort: images must be (N, C, H, W) float32/float64, "
            f"got {images.shape} {images.dtype}"
        )
    N = images.shape[0]
    if mats.shape != (N, 2, 3) or not np.issubdtype(mats.dtype, np.number):
        raise Lenet5Error(f"distort: mats must be ({N}, 2, 3) numbers, got {mats.shape}")
    if not np.all(np.isfinite(mats)):
        raise Lenet5Error("distort: mats must be finite, got NaN or inf")
    if np.abs(mats).max(initial=0.0) > MAX_ENTRY:  # keeps every coordinate finite in float32
        raise Lenet5Error(f"distort: mats entries must lie within +-{MAX_ENTRY:g}, got {np.abs(mats).max():g}")
    if not np.isfinite(fill):
        raise Lenet5Error(f"distort: fill must be finite, got {fill!r}")
    return images, mats


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
    return _resample(*_checked(images, mats, fill), fill)


def _resample(images, mats, fill):
    """``affine_warp`` of checked arrays."""
    N, C, H, W = images.shape
    planes = images.reshape(N * C, H, W)  # (N*C, H, W)
    plane_mats = np.repeat(mats.astype(np.float64), C, axis=0)  # (N*C, 2, 3)
    out = np.empty_like(planes)
    for start in range(0, N * C, CHUNK):
        stop = min(start + CHUNK, N * C)
        out[start:stop] = _warp_chunk(planes[start:stop], plane_mats[start:stop], fill)
    return out.reshape(N, C, H, W)  # (N, C, H, W)


def warp_except(images, mats, keep=None, fill=-0.1):
    """``affine_warp(images, mats, fill)``, except that the images where ``keep`` ``(N,)`` is true
    are returned as they are (``keep`` None: none are)."""
    if keep is None:
        return affine_warp(images, mats, fill)
    images, mats = _checked(images, mats, fill)  # every matrix is checked, also those not used
    keep = np.asarray(keep)
    if keep.shape != (len(images),) or keep.dtype != bool:
        raise Lenet5Error(f"distort: keep must be ({len(images)},) booleans, got {keep.shape} {keep.dtype}")
    out = images.copy()
    move = ~keep
    if move.any():  # each image is resampled on its own: the kept ones need not be computed at all
        out[move] = _resample(images[move], mats[move], fill)
    return out
