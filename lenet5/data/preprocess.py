"""Turn the four raw MNIST IDX files into the network's input arrays.

The paper (§II.B) feeds LeNet-5 a 32x32 field: the 28x28 MNIST digit padded by 2 pixels of background
on each side, with background mapped to -0.1 and full ink to 1.175 (``x = -0.1 + 1.275 * p / 255``),
"so that the mean input is roughly 0 and the variance roughly 1".

``prepare`` reads and checks everything first and only then writes (``store/prepared.py``, each
``.npy`` atomically), so a bad input leaves the output folder as it was. ``normalize`` is the one
normalization: MNIST files and user images (``image.py``) go through it alike.
"""

from pathlib import Path

import numpy as np

from ..errors import Lenet5Error
from ..store.prepared import write_prepared
from .idx import MNIST_NAMES, MNIST_SIDE, load_mnist_pair

BACKGROUND = -0.1  # value of a blank pixel and of the padding (paper §II.B)
INK = 1.175  # value of a full-ink pixel (p = 255)
PAD = 2  # pixels of background added on each side: 28 + 2 * 2 = 32
SIDE = MNIST_SIDE + 2 * PAD


def normalize(images: np.ndarray) -> np.ndarray:
    """Pad MNIST digits to 32x32 and map grey levels to [-0.1, 1.175] (paper §II.B).

    Parameters
    ----------
    images : ndarray of shape ``(N, 28, 28)``, uint8
        0 is background, 255 full ink.

    Returns
    -------
    ndarray of shape ``(N, 1, 32, 32)``, float32
        ``-0.1 + 1.275 * p / 255`` inside, -0.1 in the 2-pixel border.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (MNIST_SIDE, MNIST_SIDE):
        raise Lenet5Error(
            f"normalize got {images.dtype} images of shape {images.shape}; "
            f"expected uint8 of shape (N, {MNIST_SIDE}, {MNIST_SIDE})"
        )
    n = images.shape[0]
    out = np.full((n, 1, SIDE, SIDE), BACKGROUND, dtype=np.float32)  # (N, 1, 32, 32)
    inner = out[:, 0, PAD:PAD + MNIST_SIDE, PAD:PAD + MNIST_SIDE]  # (N, 28, 28) view into out
    # written in place, in float32, so no float64 copy of the whole set is ever made
    np.multiply(images, np.float32((INK - BACKGROUND) / 255), out=inner, dtype=np.float32)
    inner += np.float32(BACKGROUND)
    return out


def prepare(raw_dir, out_dir, train_limit: int = 0, test_limit: int = 0) -> dict:
    """Read the four IDX files in ``raw_dir``, normalize, and write four ``.npy`` files to ``out_dir``.

    Parameters
    ----------
    raw_dir : str or Path
        Holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``
        and ``t10k-labels-idx1-ubyte`` (decompressed, as ``fetch.py`` stores them).
    out_dir : str or Path
        Receives ``{train,test}_images.npy`` (float32, ``(N, 1, 32, 32)``) and
        ``{train,test}_labels.npy`` (uint8, ``(N,)``).
    train_limit, test_limit : int >= 0
        Keep only the first N digits of each split; 0 (or more than the split holds) keeps all.

    Returns
    -------
    dict
        ``{"train": N_train, "test": N_test}``, the counts written.
    """
    limits = {"train": int(train_limit), "test": int(test_limit)}
    raw_dir = Path(raw_dir)
    # read and check both splits before writing anything
    splits = {}
    for split, (images_name, labels_name) in MNIST_NAMES.items():
        images, labels = load_mnist_pair(raw_dir / images_name, raw_dir / labels_name)
        if limits[split]:
            images, labels = images[: limits[split]], labels[: limits[split]]
        splits[split] = (images, labels)
    return write_prepared(out_dir, {split: (normalize(images), labels) for split, (images, labels) in splits.items()})
