"""The ``.npz`` file format of weights and training checkpoints: no pickle, validated on load.

A file holds a format marker, the parameter arrays under their names (``C1.weight`` ...) and,
for training checkpoints, extra arrays under ``state/<name>`` (optimizer state, RNG state, epoch,
fingerprint). Loading uses ``allow_pickle=False`` and checks every name, shape and dtype, so a
truncated, tampered or foreign file is refused with one line instead of being half used.
"""

import zipfile

import numpy as np

from ..errors import Lenet5Error
from .atomic import save_npz

FORMAT_KEY = "lenet5/format"
FORMAT = "lenet5-npz-1"
STATE = "state/"


def save_arrays(path, params, extra=None):
    """Atomically write ``params`` (name -> array) and ``extra`` (name -> array-like) to ``path``."""
    arrays = {FORMAT_KEY: np.array(FORMAT)}
    arrays.update(params)
    for k, v in (extra or {}).items():
        arrays[STATE + k] = np.asarray(v)
    save_npz(path, arrays)


def load_arrays(path, shapes, dtypes):
    """Read ``path`` -> (params, extra). ``shapes``: expected name -> shape; ``dtypes``: allowed names."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
        if head != b"PK\x03\x04":  # every .npz is a zip archive
            raise Lenet5Error(f"{path}: not a readable LeNet-5 .npz checkpoint (not a zip archive)")
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise Lenet5Error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise Lenet5Error(f"{path}: is a folder, expected a .npz file") from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        raise Lenet5Error(f"{path}: not a readable LeNet-5 .npz checkpoint ({type(e).__name__}: {e})") from None
    for k, v in data.items():
        if not isinstance(v, np.ndarray):  # np.load returns the raw bytes of a member that is not .npy
            raise Lenet5Error(f"{path}: not a LeNet-5 checkpoint (member '{k}' is not a .npy array)")
    fmt = data.get(FORMAT_KEY)
    if fmt is None or fmt.shape != () or str(fmt) != FORMAT:
        raise Lenet5Error(f"{path}: not a LeNet-5 checkpoint (missing or wrong '{FORMAT_KEY}' marker)")
    params, extra = {}, {}
    for k, v in data.items():
        if k.startswith(STATE):
            extra[k[len(STATE):]] = v
        elif k != FORMAT_KEY and k not in shapes:
            raise Lenet5Error(f"{path}: not a LeNet-5 checkpoint (unexpected array '{k}')")
    kinds = set()
    for k, shape in shapes.items():
        if k not in data:
            raise Lenet5Error(f"{path}: not a LeNet-5 checkpoint (missing array '{k}')")
        v = data[k]
        if v.shape != tuple(shape):
            raise Lenet5Error(f"{path}: '{k}' has shape {v.shape}, expected {tuple(shape)} (another architecture?)")
        if v.dtype.name not in dtypes:
            raise Lenet5Error(f"{path}: '{k}' has dtype {v.dtype}, expected one of {', '.join(dtypes)}")
        if not np.all(np.isfinite(v)):
            raise Lenet5Error(f"{path}: '{k}' contains NaN or infinity")
        kinds.add(v.dtype.name)
        params[k] = v
    if len(kinds) > 1:
        raise Lenet5Error(f"{path}: parameters mix dtypes {sorted(kinds)}, expected one")
    return params, extra
