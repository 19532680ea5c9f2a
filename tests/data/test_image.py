"""Tests of lenet5.data.image: any image file -> the network's (1, 32, 32) input, prepared as MNIST.

The images are drawn here with Pillow (a thick "7" on photo-like noisy paper); the MNIST round trip
uses the real test digits and skips when they are absent.
"""

import gzip
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lenet5.errors import Lenet5Error
from conftest import MNIST_DIR
from lenet5.data.image import load_digit, mnist_style
from lenet5.data.preprocess import normalize

BG = np.float32(-0.1)


def _seven(size=(400, 300), paper=230, ink=30) -> np.ndarray:
    """A thick "7" drawn on plain paper; uint8 (H, W)."""
    w, h = size
    im = Image.new("L", size, paper)
    pts = [(0.375 * w, 0.2 * h), (0.65 * w, 0.2 * h), (0.475 * w, 0.83 * h)]
    ImageDraw.Draw(im).line(pts, fill=ink, width=max(2, round(0.035 * w)), joint="curve")
    return np.asarray(im)


def _noisy(a: np.ndarray, sigma=6.0, seed=0) -> np.ndarray:
    """``a`` (H, W[, C]) with mild Gaussian sensor noise, as uint8."""
    rng = np.random.default_rng(seed)
    return np.clip(a + rng.normal(0.0, sigma, a.shape), 0, 255).astype(np.uint8)


def _save(tmp_path, name, a, **kw) -> Path:
    path = tmp_path / name
    (a if isinstance(a, Image.Image) else Image.fromarray(a)).save(path, **kw)
    return path


def _field(x: np.ndarray) -> np.ndarray:
    """The 28x28 field of an input (1, 32, 32), after checking the padding is background."""
    assert x.shape == (1, 32, 32) and x.dtype == np.float32
    ring = np.ones((32, 32), dtype=bool)
    ring[2:30, 2:30] = False
    assert np.all(x[0][ring] == BG)
    return x[0, 2:30, 2:30]


def _com(a: np.ndarray) -> tuple[float, float]:
    m = a.sum()
    return (a.sum(axis=1) @ np.arange(a.shape[0])) / m, (a.sum(axis=0) @ np.arange(a.shape[1])) / m


@pytest.fixture
def seven_png(tmp_path):
    return _save(tmp_path, "seven.png", _noisy(_seven()))


def test_dark_digit_on_noisy_paper_is_mnist_like(seven_png):
    f = _field(load_digit(seven_png))
    ink = f > BG + 1e-6
    assert f.max() >= 1.1  # ink bright (1.175 at full ink)
    assert np.mean(f == BG) > 0.6  # the paper and its noise became exact background
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    h, w = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    assert max(h, w) in (19, 20) and min(h, w) <= 20  # size-normalised to a 20x20 box
    cy, cx = _com(f - BG)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1


def test_light_on_dark_gives_the_same_digit(tmp_path, seven_png):
    inverted = _save(tmp_path, "inv.png", 255 - _noisy(_seven()))
    a, b = load_digit(seven_png), load_digit(inverted)
    assert np.abs(a - b).mean() < 0.01 and np.abs(a - b).max() < 0.1


def test_linear_illumination_gradient_is_tolerated(tmp_path, seven_png):
    light = np.linspace(1.0, 0.65, 400)[None, :]  # (1, W): paper from 230 down to 150, ink alike
    shaded = _save(tmp_path, "shaded.png", _noisy(_seven() * light))
    assert np.abs(load_digit(shaded) - load_digit(seven_png)).mean() < 0.03


def test_16bit_png_scaled_by_65535(tmp_path):
    a8 = _seven(paper=235, ink=20).astype(np.float64)
    # 16-bit: paper 60395, ink 5140; read as if 8-bit it would clip to white and look blank
    p16 = _save(tmp_path, "d16.png", (a8 * 257).astype(np.uint16))
    with Image.open(p16) as im:
        assert im.mode in ("I;16", "I")
    p8 = _save(tmp_path, "d8.png", a8.astype(np.uint8))
    assert np.abs(load_digit(p16) - load_digit(p8)).max() < 0.02


def test_rgba_is_composited_on_white(tmp_path):
    # the transparent pixels have the ink's colour: ignoring alpha would leave a blank image
    im = Image.new("RGBA", (400, 300), (20, 20, 20, 0))
    alpha = Image.fromarray(np.where(_seven(paper=0, ink=255) > 0, 255, 0).astype(np.uint8))
    im.putalpha(alpha)
    rgba = _save(tmp_path, "d.png", im)
    plain = _save(tmp_path, "plain.png", np.where(np.asarray(alpha) > 0, 20, 255).astype(np.uint8))
    x = load_digit(rgba)
    assert x.max() > 1.1
    assert np.abs(x - load_digit(plain)).max() < 1e-6


def test_isolated_specks_do_not_move_the_digit(tmp_path, seven_png):
    a = _noisy(_seven())
    for y, x in [(40, 330), (270, 60), (150, 40), (260, 350), (100, 100)]:
        a[y, x] = 0  # dust on the paper, far from the digit
    specks = _save(tmp_path, "specks.png", a)
    assert np.abs(load_digit(specks) - load_digit(seven_png)).max() < 1e-6


def test_palette_image(tmp_path, seven_png):
    rgb = Image.fromarray(_noisy(_seven())).convert("RGB")
    pal = _save(tmp_path, "p.png", rgb.quantize(32))
    with Image.open(pal) as im:
        assert im.mode == "P"
    assert np.abs(load_digit(pal) - load_digit(seven_png)).mean() < 0.03


def test_multi_frame_gif_uses_first_frame(tmp_path, seven_png):
    first = Image.fromarray(_noisy(_seven()))
    bar = np.full((300, 400), 230, dtype=np.uint8)
    bar[140:160, 50:350] = 30  # a wide horizontal bar: nothing like a 7
    gif = tmp_path / "anim.gif"
    first.save(gif, save_all=True, append_images=[Image.fromarray(bar)], duration=100)
    with Image.open(gif) as im:
        assert im.n_frames == 2
    x = load_digit(gif)
    assert np.abs(x - load_digit(seven_png)).mean() < 0.01
    assert np.abs(x - load_digit(_save(tmp_path, "bar.png", bar))).mean() > 0.05


def test_jpeg_close_to_png(tmp_path, seven_png):
    jpg = _save(tmp_path, "d.jpg", Image.fromarray(_noisy(_seven())).convert("RGB"), quality=85)
    assert np.abs(load_digit(jpg) - load_digit(seven_png)).mean() < 0.05


def test_large_jpeg_photo_is_reduced_not_refused(tmp_path, seven_png):
    big = Image.fromarray(_noisy(_seven(size=(2800, 2100)), seed=1)).convert("RGB")
    jpg = _save(tmp_path, "big.jpg", big, quality=85)
    assert np.abs(load_digit(jpg) - load_digit(seven_png)).mean() < 0.06


def test_exif_orientation_is_applied(tmp_path):
    a = np.full((100, 300), 240, dtype=np.uint8)
    a[40:60, 30:270] = 10  # stored as a wide bar ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... to be shown rotated by 90 degrees: a tall bar
    plain, turned = _save(tmp_path, "plain.jpg", a), _save(tmp_path, "turned.jpg", a, exif=exif)
    wide, tall = _field(load_digit(plain)) > BG, _field(load_digit(turned)) > BG
    assert wide.any(axis=0).sum() == 20 and wide.any(axis=1).sum() < 6
    assert tall.any(axis=1).sum() == 20 and tall.any(axis=0).sum() < 6


def _bad_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("not an image, just text\n")
    good = _save(tmp_path, "good.png", _noisy(_seven())).read_bytes()
    (tmp_path / "cut.png").write_bytes(good[: len(good) // 2])
    _save(tmp_path, "blank.png", _noisy(np.full((300, 400), 230.0)))
    (tmp_path / "folder.png").mkdir()
    return {"missing.png": "not found", "empty.png": "empty", "notes.png": "not an image",
            "cut.png": "cannot decode", "blank.png": "no digit found", "folder.png": "directory"}


def test_bad_files_raise_one_line_naming_the_path(tmp_path):
    for name, why in _bad_files(tmp_path).items():
        path = tmp_path / name
        with pytest.raises(Lenet5Error) as e:
            load_digit(path)
        msg = str(e.value)
        assert str(path) in msg and why in msg and "\n" not in msg, msg


def test_too_many_pixels_refused(seven_png):
    with pytest.raises(Lenet5Error, match="max_pixels") as e:
        load_digit(seven_png, max_pixels=100_000)  # the image has 120,000
    assert str(seven_png) in str(e.value)
    assert load_digit(seven_png, max_pixels=120_000).shape == (1, 32, 32)
    with pytest.raises(Lenet5Error, match="max_pixels"):
        load_digit(seven_png, max_pixels=0)


def test_pillow_decompression_bomb_check_gives_our_error(monkeypatch, seven_png):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)  # warning zone: 120,000 < 200,000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_digit(seven_png, max_pixels=200_000).shape == (1, 32, 32)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20_000)  # error zone: above 40,000
    with pytest.raises(Lenet5Error, match="too large") as e:
        load_digit(seven_png, max_pixels=200_000)
    assert str(seven_png) in str(e.value)


def test_mnist_style_on_arrays():
    g = np.zeros((60, 90))
    g[10:50, 40:46] = 1.0  # a bright vertical stroke, 40 x 6
    u = mnist_style(g)
    assert u.shape == (28, 28) and u.dtype == np.uint8 and u.max() == 255
    assert u.any(axis=1).sum() == 20 and u.any(axis=0).sum() == 3
    cy, cx = _com(u.astype(np.float64))
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    with pytest.raises(Lenet5Error, match="no digit found"):
        mnist_style(np.full((40, 40), 0.7))
    with pytest.raises(Lenet5Error, match="shape"):
        mnist_style(np.zeros((3, 40, 40)))


@pytest.mark.mnist
def test_real_mnist_digit_round_trip(tmp_path):
    src = MNIST_DIR / "t10k-images-idx3-ubyte.gz"
    if not src.is_file():
        pytest.skip(f"MNIST test images not found at {src}")
    with gzip.open(src, "rb") as f:
        head = f.read(16 + 20 * 28 * 28)
    assert int.from_bytes(head[:4], "big") == 2051  # IDX magic: unsigned bytes, 3 dimensions
    digits = np.frombuffer(head, np.uint8, offset=16).reshape(20, 28, 28)  # (N, H, W)
    plain, shifted, mad = [], [], []
    for i, d in enumerate(digits):
        x = load_digit(_save(tmp_path, f"{i}.png", d))[0]
        want = normalize(d[None])[0, 0]
        plain.append(np.corrcoef(x.ravel(), want.ravel())[0, 1])
        # MNIST rounded its centring differently at times: allow a 1-pixel shift
        shifted.append(max(np.corrcoef(np.roll(x, (dy, dx), (0, 1)).ravel(), want.ravel())[0, 1]
                           for dy in (-1, 0, 1) for dx in (-1, 0, 1)))
        mad.append(np.abs(x - want).mean())
    assert np.mean(plain) > 0.95 and min(shifted) > 0.9 and np.mean(mad) < 0.03


def test_an_endless_device_is_read_bounded_and_refused():
    from lenet5.data.image import MAX_STREAM_BYTES

    with pytest.raises(Lenet5Error, match=f"^cannot read image /dev/zero: more than {MAX_STREAM_BYTES} bytes$"):
        load_digit("/dev/zero")


def test_a_pipe_is_read_although_it_reports_size_zero(tmp_path):
    import os
    import threading

    im = Image.new("L", (80, 100), 255)  # a thick black 7 on white paper
    ImageDraw.Draw(im).line([(20, 15), (62, 15), (34, 90)], fill=0, width=9)
    png = tmp_path / "7.png"
    im.save(png)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(png.read_bytes()))
    writer.start()
    try:
        x = load_digit(fifo)
    finally:
        writer.join(timeout=10)
    assert np.array_equal(x, load_digit(png))
