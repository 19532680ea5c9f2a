"""Turn an image file (a photo of a digit on paper, a scan, an MNIST PNG) into LeNet-5's input.

The digit is prepared the way MNIST was made [P §II.B]: ink bright on a 0 background, cropped to
its bounding box, scaled (anti-aliased) so that the longer side is 20 px, placed in a 28x28 field
with its centre of mass at (14, 14), then padded to 32x32 and mapped to the training range
(background -0.1, full ink 1.175) by the same ``preprocess.normalize`` as the MNIST files.

Pillow only decodes (plus integer box-reduction of very large images and the final resize); the
rest is NumPy. One digit per image is assumed, on a background that reaches the image border
(paper filling the frame); a linear illumination gradient across the paper is tolerated.
"""

import io
import math
import os
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import Lenet5Error
from .preprocess import normalize

DEFAULT_MAX_PIXELS = 40_000_000  # refuse images above 40 megapixels (width x height as declared)
MAX_STREAM_BYTES = 64 << 20  # a pipe or device is read up to this many bytes (a file is not read whole)
WORK_SIDE = 1024  # larger images are box-reduced to about this many pixels on the longer side
FIELD, BOX = 28, 20  # MNIST field, size-normalised box
MIN_CONTRAST = 0.04  # ink must differ from the paper by at least this much (gray levels in [0, 1])
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601 weights, as Pillow's "L"
# what Pillow's decoders raise on corrupt or truncated data
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, TypeError,
                  struct.error, ZeroDivisionError)


def load_digit(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file and return it as the network's input, prepared as MNIST.

    Any format Pillow decodes (PNG, JPEG, GIF, TIFF, BMP, WebP, ...) and any size up to
    ``max_pixels`` (default 40 megapixels; Pillow's own decompression-bomb check is taken over by
    it). Multi-frame files (GIF, TIFF, APNG) use their first frame only. EXIF orientation is
    applied; transparent pixels are composited on white; 16-bit grayscale is scaled by 65535.

    Parameters
    ----------
    path : str or Path
    max_pixels : int
        Largest width x height accepted.

    Returns
    -------
    x : float32 ndarray of shape (1, 32, 32), background -0.1, ink up to 1.175

    Raises
    ------
    Lenet5Error
        One line naming ``path``: missing or empty file, not an image, corrupt data, too many
        pixels, or no digit found (a blank image).
    """
    gray = _read_gray(Path(path), max_pixels)
    try:
        u8 = mnist_style(gray)
    except Lenet5Error as e:
        raise Lenet5Error(f"{os.fspath(path)}: {e}") from None
    return normalize(u8[None])[0]  # (28, 28) -> (1, 28, 28) -> (1, 1, 32, 32) -> (1, 32, 32)


def mnist_style(gray: np.ndarray) -> np.ndarray:
    """Apply the MNIST recipe to a grayscale image of one digit, of any size.

    1. Background: a plane a + b*x + c*y fitted (robustly) to the border strip; the spread of the
       border around it is the paper noise.
    2. Polarity: pixels beyond 5 noise levels from the background are ink candidates; the side
       (darker or lighter than the paper) with more squared excess is the ink, so dark-on-light
       is inverted to ink bright on 0.
    3. Contrast: ink = (d - t) / (peak - t) clipped to [0, 1], where d is the distance from the
       background towards the ink (for dark ink, relative to the local paper level, so uneven
       lighting cancels), peak its 90th percentile over the candidates and
       t = max(5 * noise, 0.04, peak / 5): paper noise and faint shadows become 0.
    4. Crop to the bounding box of the ink (isolated 1-2 pixel specks ignored), scale the box so
       the longer side is 20 px keeping the aspect ratio (box filter when shrinking, bilinear
       when enlarging), place it in 28x28 with the centre of mass at (14, 14) (rounded, kept
       within the field).

    Parameters
    ----------
    gray : ndarray of shape (H, W), floats in [0, 1] (0 black)

    Returns
    -------
    u8 : uint8 ndarray of shape (28, 28), ink 255 on 0

    Raises
    ------
    Lenet5Error
        Not 2-D, not finite, or no digit found.
    """
    g = np.asarray(gray, dtype=np.float32)
    if g.ndim != 2 or g.size == 0:
        raise Lenet5Error(f"mnist_style expects a non-empty (H, W) gray image, got shape {g.shape}")
    if not np.isfinite(g).all():
        raise Lenet5Error("mnist_style expects finite gray levels in [0, 1], got NaN or inf")
    ink = _ink(np.clip(g, 0.0, 1.0))
    box = _fit_box(ink)
    return _centre(box)


def _read_gray(path: Path, max_pixels: int) -> np.ndarray:
    """Decode ``path`` (first frame, EXIF-oriented, reduced when huge) to gray (H, W) in [0, 1]."""
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise Lenet5Error(f"max_pixels must be a positive integer, got {max_pixels!r}")
    if path.is_dir():
        raise Lenet5Error(f"cannot read image {path}: it is a directory")
    if not path.exists():
        raise Lenet5Error(f"cannot read image {path}: file not found")
    source = path
    if not path.is_file():  # a pipe such as <(cat 7.png) reports size 0: read it, bounded
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_STREAM_BYTES + 1)
        except OSError as e:
            raise Lenet5Error(f"cannot read image {path}: {e.strerror or e}") from e
        if len(data) > MAX_STREAM_BYTES:
            raise Lenet5Error(f"cannot read image {path}: more than {MAX_STREAM_BYTES} bytes")
        source = io.BytesIO(data)
    if (len(data) if source is not path else path.stat().st_size) == 0:
        raise Lenet5Error(f"cannot read image {path}: the file is empty")
    try:
        with warnings.catch_warnings():
            # Pillow warns above Image.MAX_IMAGE_PIXELS; our own max_pixels check replaces it
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as im:  # reads the header only; frame 0 is current
                w, h = im.size
                if w * h > max_pixels:
                    raise Lenet5Error(f"image {path} is {w}x{h} = {w * h:,} pixels, "
                                      f"more than max_pixels={max_pixels:,}")
                if im.format == "JPEG" and max(w, h) > 2 * WORK_SIDE:
                    s = WORK_SIDE / max(w, h)  # let the decoder scale by 1/2, 1/4 or 1/8
                    im.draft(im.mode, (max(1, round(w * s)), max(1, round(h * s))))
                im = ImageOps.exif_transpose(im)
                return _to_gray(im)
    except Image.DecompressionBombError as e:  # above 2 x Image.MAX_IMAGE_PIXELS
        raise Lenet5Error(f"image {path} is too large: over Pillow's decompression-bomb limit "
                          f"of {2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels") from e
    except UnidentifiedImageError as e:
        raise Lenet5Error(f"{path} is not an image Pillow can read "
                          "(expected PNG, JPEG, GIF, TIFF, BMP, WebP, ...)") from e
    except (FileNotFoundError, PermissionError) as e:
        raise Lenet5Error(f"cannot read image {path}: {e.strerror or e}") from e
    except _DECODE_ERRORS as e:
        raise Lenet5Error(f"cannot decode image {path}: {e}") from e


def _to_gray(im: Image.Image) -> np.ndarray:
    """Decoded image (any mode) -> float32 (H, W) in [0, 1]; box-reduced when over WORK_SIDE."""
    mode, scale = im.mode, None
    if mode.startswith("I;16"):
        im, scale = im.convert("I"), 65535.0  # lossless; 16-bit, whatever the values reached
    elif mode in ("I", "F"):
        pass  # range decided from the values below
    elif mode.endswith(("A", "a")) or "transparency" in im.info:
        im = im.convert("RGBA").convert("RGBa")  # premultiplied: box-reduction stays exact
    elif mode in ("1", "L"):
        im, scale = im.convert("L"), 255.0
    else:  # P, RGB, CMYK, YCbCr, ...
        im = im.convert("RGB")
    k = math.ceil(max(im.size) / WORK_SIDE)
    if k > 1:
        im = im.reduce(k)  # mean of k x k blocks
    a = np.asarray(im).astype(np.float32)  # (H, W) or (H, W, C)
    if im.mode == "RGBa":  # composite on white: premultiplied colour + (1 - alpha) * white
        return (a[..., :3] + (255.0 - a[..., 3:])) @ LUMA / 255.0  # (H, W, 3) -> (H, W)
    if im.mode == "RGB":
        return a @ LUMA / 255.0  # (H, W, 3) -> (H, W)
    if scale is None:  # I or F of unknown range: 16-bit if it fits (as Pillow's older PNG "I")
        lo, hi = float(a.min()), float(a.max())
        if im.mode == "I" and lo >= 0 and hi <= 65535:
            scale = 65535.0
        elif im.mode == "F" and lo >= 0 and hi <= 1:
            scale = 1.0
        else:
            a, scale = a - lo, max(hi - lo, 1e-12)
    return a / np.float32(scale)


def _background(g: np.ndarray) -> tuple[np.ndarray, float]:
    """Plane fitted to the border strip of ``g`` (H, W) and the noise (robust std) around it."""
    H, W = g.shape
    b = max(1, min(H, W) // 20)
    y = np.linspace(-1.0, 1.0, H, dtype=np.float32)[:, None]  # (H, 1)
    x = np.linspace(-1.0, 1.0, W, dtype=np.float32)[None, :]  # (1, W)
    border = np.ones((H, W), dtype=bool)
    border[b:H - b, b:W - b] = False
    yy, xx = np.broadcast_to(y, (H, W))[border], np.broadcast_to(x, (H, W))[border]
    A = np.stack([np.ones_like(xx), xx, yy], axis=1)  # (n, 3)
    v = g[border]
    r = v - np.median(v)  # start from the median level: robust to ink on up to half the border
    for _ in range(3):  # drop outliers (ink touching the border), fit the plane to the rest
        noise = 1.4826 * float(np.median(np.abs(r - np.median(r))))  # MAD -> std
        keep = np.abs(r) <= max(3.0 * noise, 0.01)
        coef = np.linalg.lstsq(A[keep], v[keep], rcond=None)[0]
        r = v - A @ coef
    noise = 1.4826 * float(np.median(np.abs(r[keep])))
    plane = coef[0] + coef[1] * x + coef[2] * y  # (H, W)
    return plane.astype(np.float32), noise


def _ink(g: np.ndarray) -> np.ndarray:
    """Gray (H, W) in [0, 1] -> ink (H, W) in [0, 1], bright on 0, paper and noise removed."""
    plane, noise = _background(g)
    d = g - plane  # > 0: lighter than the paper
    floor = max(5.0 * noise, MIN_CONTRAST)
    light = float(np.sum(np.clip(d - floor, 0, None) ** 2))
    dark = float(np.sum(np.clip(-d - floor, 0, None) ** 2))
    if light == 0.0 and dark == 0.0:
        raise Lenet5Error("no digit found: the image is blank "
                          "(nothing stands out from the background)")
    if dark > light:  # dark ink on light paper: invert, and undo uneven lighting (ink absorbs a
        # fraction of the light reaching it, so its darkness is relative to the local paper level)
        d = -d * (float(plane.mean()) / np.maximum(plane, 0.05))
    peak = float(np.percentile(d[d > floor], 90))
    t = max(floor, 0.2 * peak)
    return np.clip((d - t) / max(peak - t, 1e-6), 0.0, 1.0)


def _fit_box(ink: np.ndarray) -> np.ndarray:
    """Crop ``ink`` (H, W) to its bounding box and scale it so the longer side is 20 px."""
    m = ink > 0
    n = np.zeros((m.shape[0] + 2, m.shape[1] + 2), dtype=np.uint8)  # (H+2, W+2): 3x3 ink counts
    for dy in range(3):
        for dx in range(3):
            n[dy:dy + m.shape[0], dx:dx + m.shape[1]] += m
    core = m & (n[1:-1, 1:-1] >= 3)  # drop isolated specks of 1-2 pixels
    if not core.any():
        raise Lenet5Error("no digit found: only isolated specks differ from the background")
    rows, cols = np.flatnonzero(core.any(axis=1)), np.flatnonzero(core.any(axis=0))
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    s = BOX / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))  # Pillow order (width, height)
    filt = Image.Resampling.BOX if s < 1 else Image.Resampling.BILINEAR
    out = Image.fromarray(crop.astype(np.float32)).resize(size, filt)  # mode "F"
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)  # (h', w'), max(h', w') == 20


def _centre(box: np.ndarray) -> np.ndarray:
    """Place ``box`` (h, w) <= (20, 20) in a 28x28 field, centre of mass at (14, 14); uint8."""
    h, w = box.shape
    mass = float(box.sum())
    if mass <= 0:
        raise Lenet5Error("no digit found: the ink vanished when scaled to 20 pixels")
    cy = float((box.sum(axis=1) * np.arange(h)).sum()) / mass
    cx = float((box.sum(axis=0) * np.arange(w)).sum()) / mass
    top = min(max(math.floor(FIELD / 2 - cy + 0.5), 0), FIELD - h)
    left = min(max(math.floor(FIELD / 2 - cx + 0.5), 0), FIELD - w)
    field = np.zeros((FIELD, FIELD), dtype=np.float32)
    field[top:top + h, left:left + w] = box
    return np.rint(field * 255.0).astype(np.uint8)
