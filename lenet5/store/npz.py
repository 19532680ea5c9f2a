"""The ``.npz`` file format of weights and training checkpoints: no pickle, validated on load.

A file holds a format marker, the parameter arrays under their names (``C1.weight`` ...), for
training checkpoints extra arrays under ``state/<name>`` (``STATE_NAMES``: epoch, fingerprint,
RNG state, log, velocity buffers), and a SHA-256 digest of all of them (names, dtypes, shapes and
bytes), so an edited array is detected. Loading reads the zip directory first and refuses, before
reading any array: an unexpected member name, a compressed member, a member bigger than
``MAX_MEMBER`` or whose ``.npy`` header declares more or fewer bytes than it stores, an object
dtype. Then every name, shape and dtype is checked and the digest recomputed, so a truncated,
tampered or foreign file is refused with one line instead of being half used.

Files are written member by member with fixed zip fields (stored, dated 1980-01-01, no zip64: a
member is at most ``MAX_MEMBER`` bytes), so their bytes depend on the arrays alone. ``np.savez``
forces zip64 headers, whose "version needed" field Python 3.11.2 writes as 20 and 3.11.7 as 45:
the same weights gave other file bytes, and another ``dvc.lock``, under another Python.
"""

import hashlib
import io
import os
import zipfile

import numpy as np

from ..errors import Lenet5Error
from .atomic import write_bytes
from .npyheader import check_header

FORMAT_KEY = "lenet5/format"
FORMAT = "lenet5-npz-2"  # -1 had no digest
DIGEST_KEY = "lenet5/sha256"
STATE = "state/"
STATE_NAMES = ("epoch", "fingerprint", "rng_state", "log")  # plus velocity/<parameter>
MAX_MEMBER = 64 << 20  # bytes of one array: the largest parameter array holds 48,120 values
MAX_FILE = 256 << 20
MAX_MEMBERS = 64


def digest(arrays) -> str:
    """SHA-256 over the arrays' names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0{a.nbytes}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_arrays(path, params, extra=None):
    """Atomically write ``params`` (name -> array) and ``extra`` (name -> array-like) to ``path``."""
    arrays = {FORMAT_KEY: np.array(FORMAT)}
    arrays.update(params)
    for k, v in (extra or {}).items():
        arrays[STATE + k] = np.asarray(v)
    arrays[DIGEST_KEY] = np.array(digest(arrays))
    write_bytes(path, npz_bytes(arrays))


def npz_bytes(arrays) -> bytes:
    """An uncompressed ``.npz`` of ``arrays`` (name -> array, no pickle), the same bytes under any
    Python and NumPy that write the same ``.npy`` headers."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name, a in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(a), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o600 << 16  # what writestr sets by itself, written out
            info.create_system = 3  # Unix, on every system
            z.writestr(info, member.getvalue())
    return out.getvalue()


def _allowed(shapes):
    """Every member name a LeNet-5 file may hold."""
    names = {FORMAT_KEY, DIGEST_KEY, *shapes}
    names |= {STATE + n for n in STATE_NAMES} | {f"{STATE}velocity/{k}" for k in shapes}
    return names


def _read_members(path, shapes):
    """name -> array for every member, each checked against the zip directory before it is read."""
    if os.path.getsize(path) > MAX_FILE:
        raise Lenet5Error(f"{path}: larger than {MAX_FILE} bytes; not a LeNet-5 .npz checkpoint")
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":  # every .npz is a zip archive
            raise Lenet5Error(f"{path}: not a readable LeNet-5 .npz checkpoint (not a zip archive)")
    allowed, data = _allowed(shapes), {}
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        if len(infos) > MAX_MEMBERS:
            raise Lenet5Error(f"{path}: not a LeNet-5 checkpoint ({len(infos)} members)")
        for info in infos:
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if name not in allowed or not info.filename.endswith(".npy") or name in data:
                raise Lenet5Error(f"{path}: not a LeNet-5 checkpoint (unexpected member '{info.filename[:80]}')")
            if info.compress_type != zipfile.ZIP_STORED:
                raise Lenet5Error(f"{path}: member '{info.filename}' is compressed; LeNet-5 files store arrays "
                                  f"uncompressed")
            if info.file_size > MAX_MEMBER or info.compress_size != info.file_size:
                raise Lenet5Error(f"{path}: member '{info.filename}' holds {info.file_size} bytes; expected at "
                                  f"most {MAX_MEMBER}")
            with z.open(info) as m:
                dtype, shape, order = check_header(m, info.file_size, f"{path}: member '{info.filename}'")
                raw = m.read(info.file_size)  # exactly the declared bytes, checked above
            flat = np.frombuffer(bytearray(raw), dtype=dtype)
            data[name] = flat.reshape(shape, order=order)  # flat -> the declared shape
    return data


def load_arrays(path, shapes, dtypes):
    """Read ``path`` -> (params, extra). ``shapes``: expected name -> shape; ``dtypes``: allowed names."""
    try:
        data = _read_members(path, shapes)
    except FileNotFoundError:
        raise Lenet5Error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise Lenet5Error(f"{path}: is a folder, expected a .npz file") from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, NotImplementedError) as e:
        raise Lenet5Error(f"{path}: not a readable LeNet-5 .npz checkpoint ({type(e).__name__}: {e})") from None
    fmt = data.get(FORMAT_KEY)
    if fmt is None or fmt.shape != () or fmt.dtype.kind != "U" or str(fmt) != FORMAT:
        raise Lenet5Error(f"{path}: not a LeNet-5 checkpoint of this version (missing or wrong '{FORMAT_KEY}' "
                          f"marker; expected {FORMAT})")
    stored = data.pop(DIGEST_KEY, None)
    if stored is None or stored.shape != () or stored.dtype.kind != "U" or str(stored) != digest(data):
        raise Lenet5Error(f"{path}: content digest missing or wrong: the arrays were changed after saving")
    params, extra = {}, {k[len(STATE):]: v for k, v in data.items() if k.startswith(STATE)}
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
