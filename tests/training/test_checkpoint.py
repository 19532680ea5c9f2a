"""Checkpoints that must not be resumed: another run's, an edited or damaged file, other training code
or another BLAS kernel. Each is ignored with one message and training starts fresh."""

import io
import zipfile

import numpy as np
import pytest

from conftest import npy_header
from lenet5.model import LeNet5
from lenet5.nn.architecture import PARAM_SHAPES
from lenet5.store.npz import DIGEST_KEY, digest
from test_loop import (DATA, VARIANTS, arrays_of, assert_same_weights, make_data, make_params,  # noqa: F401
                       ref, strip, train, weights_of)  # (ref: a fixture)



# ---------------------------------------------------------------- checkpoints that must not be used

@pytest.mark.parametrize("changes, data", [
    ({"lr_scale": 2.0}, DATA),
    ({"train.batch_size": 32}, DATA),
    ({"train.seed": 1}, DATA),
    ({}, make_data(seed=5)),  # same params, other images
], ids=["lr_scale", "batch_size", "seed", "other-data"])
def test_checkpoint_of_another_run_is_ignored(ref, tmp_path, changes, data):
    path = tmp_path / "last.npz"
    train(make_params({**changes, "train.epochs": 1}), path, data=data)
    weights, rows, messages = train(make_params({"train.epochs": 1}), path)
    assert f"ignoring checkpoint {path}: made with other parameters, data or code; starting fresh" in messages
    # had the foreign epoch-1 checkpoint been used, fit would have returned its weights untouched
    assert_same_weights(weights, weights_of(ref("plain")["snap"][1]))
    assert strip(rows) == strip(ref("plain")["rows"][:1])


def _rewritten(blob, key, value=None):
    """Checkpoint bytes with the array ``key`` replaced by ``value`` (dropped when None), or, for
    ``key`` "*", with every weight cast to float64 (the state, fingerprint included, kept)."""
    arrays = arrays_of(blob)
    if key == "*":
        arrays = {k: v.astype(np.float64) if k in PARAM_SHAPES else v for k, v in arrays.items()}
    elif value is None:
        del arrays[key]
    else:
        arrays[key] = value
    arrays[DIGEST_KEY] = np.array(digest({k: v for k, v in arrays.items() if k != DIGEST_KEY}))  # resealed
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _edited(blob, key, change, seal=False):
    """Checkpoint bytes with ``change`` applied to the array ``key`` (None: the digest dropped),
    resealed only when ``seal``."""
    arrays = arrays_of(blob)
    if key is None:
        del arrays[DIGEST_KEY]
    else:
        arrays[key] = change(arrays[key].copy())
    if seal:
        arrays[DIGEST_KEY] = np.array(digest({k: v for k, v in arrays.items() if k != DIGEST_KEY}))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _outside_table_i(w):
    w[0, 5] = 0.1  # C3 map 0 reads S2 maps {0, 1, 2} only
    return w


def _with_member(blob, name, data, compress=zipfile.ZIP_STORED):
    """Checkpoint bytes with the raw zip member ``name`` added (or replacing one of that name)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(blob)) as src, zipfile.ZipFile(buf, "w") as z:
        for info in src.infolist():
            if info.filename != name:
                z.writestr(info, src.read(info))
        z.writestr(name, data, compress_type=compress)
    return buf.getvalue()


def _saved(tmp_path, make):
    """The bytes that ``make(path)`` writes to a file in ``tmp_path``."""
    path = tmp_path / "other.npz"
    make(path)
    return path.read_bytes()


def _marker_not_npy():
    """A zip whose format marker is a raw member, not a .npy array."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("lenet5/format", b"lenet5-npz-1")
    return buf.getvalue()


BAD = {  # name: (variant, (its epoch-1 checkpoint, tmp_path) -> bytes, words the message must hold)
    "garbage": ("plain", lambda s, t: bytes(range(256)) * 40, "not a readable"),
    "empty": ("plain", lambda s, t: b"", "not a readable"),
    "truncated": ("plain", lambda s, t: s[: len(s) // 2], "not a readable"),
    "bit-flip": ("plain", lambda s, t: s[:len(s) // 2] + bytes([s[len(s) // 2] ^ 1]) + s[len(s) // 2 + 1:],
                 "Bad CRC-32"),  # inside the largest array, C5.weight
    "marker-not-npy": ("plain", lambda s, t: _marker_not_npy(), "not a LeNet-5 checkpoint"),
    "float64-run": ("plain", lambda s, t: _saved(t, lambda p: train(
        make_params({"train.dtype": "float64", "train.epochs": 1}), p)), "other parameters"),
    "retyped-float64": ("plain", lambda s, t: _rewritten(s, "*"), "dtype float64 differs from float32"),
    "model-without-state": ("plain", lambda s, t: _saved(t, LeNet5(seed=3).save), "lacks training state"),
    "no-rng-state": ("plain", lambda s, t: _rewritten(s, "state/rng_state"), "lacks training state"),
    "bad-rng-state": ("plain", lambda s, t: _rewritten(s, "state/rng_state", np.array('{"x": 1}')), "damaged"),
    "short-log": ("plain", lambda s, t: _rewritten(s, "state/log", np.zeros((0, 6))), "damaged"),
    "no-velocity": ("momentum", lambda s, t: _rewritten(s, "state/velocity/F6.bias"), "lacks training state"),
    "edited": ("plain", lambda s, t: _edited(s, "F6.weight", lambda w: w * 0.5), "digest missing or wrong"),
    "no-digest": ("plain", lambda s, t: _edited(s, None, None), "digest missing or wrong"),
    "outside-table-i": ("plain", lambda s, t: _edited(s, "C3.weight", _outside_table_i, seal=True), "outside Table I"),
    "header-lies": ("plain", lambda s, t: _with_member(
        s, "C1.weight.npy", npy_header((10**11, 1, 32, 32)) + bytes(64)), "declares"),
    "extra-member": ("plain", lambda s, t: _with_member(s, "state/huge.npy", npy_header((10**10,))),
                     "unexpected member 'state/huge.npy'"),
    "compressed": ("plain", lambda s, t: _with_member(s, "state/log.npy", bytes(50_000_000), zipfile.ZIP_DEFLATED),
                   "compressed"),
    "deep-rng-json": ("plain", lambda s, t: _edited(s, "state/rng_state", lambda _: np.array("[" * 100_000),
                                                    seal=True), "damaged"),
    "bad-velocity": ("momentum", lambda s, t: _rewritten(s, "state/velocity/F6.bias", np.zeros(3, np.float32)),
                     "damaged"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_unusable_checkpoint_is_ignored_with_a_message(ref, tmp_path, kind):
    variant, make, words = BAD[kind]
    good = ref(variant)["snap"][1]
    blob = make(good, tmp_path)
    assert blob != good
    path = tmp_path / "last.npz"
    path.write_bytes(blob)
    weights, rows, messages = train(make_params({**VARIANTS[variant], "train.epochs": 1}), path)
    ignored = [m for m in messages if m.startswith("ignoring checkpoint")]
    assert len(ignored) == 1, messages
    assert str(path) in ignored[0] and words in ignored[0] and "\n" not in ignored[0]
    assert not any(m.startswith("resuming") for m in messages)
    assert_same_weights(weights, weights_of(good))  # a fresh epoch 1, nothing taken from the file
    assert strip(rows) == strip(ref(variant)["rows"][:1])
    assert_same_weights(weights_of(path.read_bytes()), weights)  # replaced by a sound checkpoint


def test_a_checkpoint_made_by_other_training_code_is_not_resumed(tmp_path, monkeypatch):
    """The fingerprint covers the source of the modules that decide the weights."""
    import lenet5.training.fingerprint as T

    params = make_params({"train.epochs": 1})
    path = tmp_path / "last.npz"
    train(params, path)
    monkeypatch.setattr(T, "code_digest", lambda: "edited layers.py")
    _, rows, messages = train(params, path)
    assert any("made with other parameters, data or code" in m for m in messages), messages
    assert [r["epoch"] for r in rows] == [1]
    monkeypatch.undo()
    train(params, path)  # a checkpoint of the real code again
    _, _, messages = train(params, path)
    assert any("resuming" in m for m in messages), messages  # the same code and kernel: resumed
    monkeypatch.setattr(T, "blas_kernel", lambda: "Sandybridge")  # as if resumed on another kernel
    _, rows, messages = train(params, path)
    assert any("made with other parameters, data or code" in m for m in messages), messages
