"""Tests of lenet5.store.npz's writer: the bytes of a file depend on its arrays alone.

``np.savez`` forces zip64 headers, whose "version needed" field differs between Python 3.11 patch
releases (20 under 3.11.2, 45 under 3.11.7), so the same weights gave other bytes, and another
``dvc.lock``, under another Python. The writer fixes every zip field itself.
"""

import zipfile

import numpy as np

from lenet5.store.npz import npz_bytes


def arrays():
    rng = np.random.default_rng(0)
    return {"lenet5/format": np.array("lenet5-npz-2"), "C1.weight": rng.normal(size=(6, 1, 5, 5)).astype(np.float32),
            "state/epoch": np.array(3)}


def test_the_zip_fields_are_fixed_and_the_bytes_repeat(tmp_path):
    data = npz_bytes(arrays())
    assert npz_bytes(arrays()) == data
    path = tmp_path / "a.npz"
    path.write_bytes(data)
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            assert (info.extract_version, info.create_version, info.create_system) == (20, 20, 3)
            assert info.date_time == (1980, 1, 1, 0, 0, 0) and info.extra == b""
            assert info.compress_type == zipfile.ZIP_STORED


def test_numpy_reads_it_back_without_pickle(tmp_path):
    path = tmp_path / "a.npz"
    path.write_bytes(npz_bytes(arrays()))
    with np.load(path, allow_pickle=False) as f:
        assert sorted(f.files) == sorted(arrays())
        for k, v in arrays().items():
            assert f[k].dtype == v.dtype and np.array_equal(f[k], v)
