"""Tests of lenet5.training.loop.fit: determinism, exact resume after a crash, extending a finished run,
refusing every checkpoint that is not this run's own, and stopping cleanly on divergence.

Tiny synthetic data (48 training and 16 test images, batch 16: 3 batches per epoch) keeps each
epoch at a fraction of a second. The uninterrupted reference runs are trained once per module; a
snapshot of their checkpoint after every epoch stands for "a fresh run of that many epochs" (the
schedule does not depend on ``epochs``, which test_more_epochs_extend_a_finished_run checks).
"""

import io
import warnings

import numpy as np
import pytest

import lenet5.training.loop as train_module
from lenet5.pipeline.config import params_from_dict
from lenet5.errors import Lenet5Error
from lenet5.nn.architecture import PARAM_SHAPES
from lenet5.training.loop import TrainingDiverged, fit
from lenet5.store.trainlog import LOG_FIELDS as LOG_KEYS
from conftest import committed_params

N_TRAIN, N_TEST = 48, 16
# lr_scale 1 keeps the net out of saturation, so every batch moves every weight and a wrong
# shuffle, distortion or velocity after a resume cannot go unnoticed.
BASE = {"lr_scale": 1.0, "train.epochs": 3, "train.batch_size": 16, "train.hessian_samples": 32,
        "train.momentum": 0.0, "distort.enabled": False}
VARIANTS = {"plain": {}, "momentum": {"train.momentum": 0.5}, "distort": {"distort.enabled": True}}


class Crash(Exception):
    """Stands for a process killed between two epochs."""


def make_params(changes=None):
    """The committed params.yaml with BASE and ``changes`` (dotted key -> value) applied."""
    return params_from_dict(committed_params({**BASE, **(changes or {})}))


def make_data(seed=0, n_train=N_TRAIN, n_test=N_TEST):
    """(train_x, train_y, test_x, test_y): random images ``(N, 1, 32, 32)`` float32 in [-0.1, 1.175]."""
    rng = np.random.default_rng(seed)
    out = []
    for n in (n_train, n_test):
        out.append(rng.uniform(-0.1, 1.175, size=(n, 1, 32, 32)).astype(np.float32))  # (N, 1, 32, 32)
        out.append(rng.integers(0, 10, size=n))  # (N,)
    return tuple(out)


DATA = make_data()


def train(params, path, data=DATA, on_epoch=None):
    """fit() quietly; returns (params dict, log rows, echoed messages)."""
    messages = []
    net, rows = fit(*data, params.lr_scale, params.train, params.distort, path,
                    progress=False, echo=messages.append, on_epoch=on_epoch)
    return net.params, rows, messages


def arrays_of(blob):
    """Every array stored in checkpoint bytes, by its name in the .npz."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def weights_of(blob):
    """The parameter arrays stored in checkpoint bytes."""
    return {k: v for k, v in arrays_of(blob).items() if k in PARAM_SHAPES}


def state_of(blob):
    """The ``state/...`` arrays stored in checkpoint bytes, keyed without the prefix."""
    return {k[len("state/"):]: v for k, v in arrays_of(blob).items() if k.startswith("state/")}


def assert_same_weights(a, b):
    """Bitwise equality of two parameter dicts (same names, dtypes, shapes and bytes)."""
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert a[k].tobytes() == b[k].tobytes(), f"{k} differs"


def strip(rows):
    """Log rows without the wall-clock column."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    """ref(variant) -> uninterrupted 3-epoch run: {"weights", "rows", "snap": {epoch: checkpoint bytes}}."""
    cache = {}

    def get(variant="plain"):
        if variant not in cache:
            path = tmp_path_factory.mktemp(f"ref_{variant}") / "last.npz"
            snap = {}
            weights, rows, _ = train(make_params(VARIANTS[variant]), path,
                                     on_epoch=lambda rows: snap.setdefault(len(rows), path.read_bytes()))
            cache[variant] = {"weights": {k: v.copy() for k, v in weights.items()}, "rows": rows, "snap": snap}
        return cache[variant]
    return get


# ---------------------------------------------------------------- determinism

def test_same_params_and_seed_give_identical_weights_and_metrics(ref, tmp_path):
    first = ref("plain")
    weights, rows, _ = train(make_params(), tmp_path / "last.npz")
    assert_same_weights(weights, first["weights"])
    assert strip(rows) == strip(first["rows"])
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(tuple(r) == LOG_KEYS + ("seconds",) and all(np.isfinite(list(r.values()))) for r in rows)
    assert all(r["seconds"] > 0 for r in rows)


def test_another_seed_gives_other_weights(ref, tmp_path):
    weights, _, _ = train(make_params({"train.seed": 1, "train.epochs": 1}), tmp_path / "last.npz")
    same_seed = weights_of(ref("plain")["snap"][1])
    for k in ("C1.weight", "C3.weight", "F6.weight"):
        assert weights[k].tobytes() != same_seed[k].tobytes(), k


def test_every_epoch_and_option_changes_the_weights(ref):
    """Guards the resume tests: they could not see a lost velocity or RNG state otherwise."""
    plain = ref("plain")
    assert weights_of(plain["snap"][2])["C1.weight"].tobytes() != plain["weights"]["C1.weight"].tobytes()
    for variant in ("momentum", "distort"):
        for k in PARAM_SHAPES:
            assert ref(variant)["weights"][k].tobytes() != plain["weights"][k].tobytes(), (variant, k)
    velocity = state_of(ref("momentum")["snap"][1])
    assert set(velocity) >= {f"velocity/{k}" for k in PARAM_SHAPES}
    assert np.abs(velocity["velocity/C1.weight"]).max() > 0


# ---------------------------------------------------------------- resume

@pytest.mark.parametrize("variant, crash_after", [
    ("plain", 1), ("plain", 2), ("momentum", 1), ("distort", 1)])
def test_resume_after_a_crash_is_exact(ref, tmp_path, variant, crash_after):
    params, path = make_params(VARIANTS[variant]), tmp_path / "last.npz"

    def crash(rows):
        if len(rows) == crash_after:
            raise Crash

    with pytest.raises(Crash):
        train(params, path, on_epoch=crash)
    assert int(state_of(path.read_bytes())["epoch"]) == crash_after
    seen = []
    weights, rows, messages = train(params, path, on_epoch=lambda rows: seen.append(len(rows)))
    assert f"resuming from checkpoint {path} after epoch {crash_after}" in messages
    assert seen == list(range(crash_after, 4))  # once on resume, then after each new epoch
    assert_same_weights(weights, ref(variant)["weights"])
    assert strip(rows) == strip(ref(variant)["rows"])


def test_more_epochs_extend_a_finished_run(ref, tmp_path):
    path = tmp_path / "last.npz"
    weights, rows, _ = train(make_params({"train.epochs": 2}), path)
    assert_same_weights(weights, weights_of(ref("plain")["snap"][2]))  # epochs does not shape the run
    weights, rows, messages = train(make_params({"train.epochs": 3}), path)
    assert f"resuming from checkpoint {path} after epoch 2" in messages
    assert sum(m.startswith("epoch ") for m in messages) == 1  # only epoch 3 was trained
    assert_same_weights(weights, ref("plain")["weights"])
    assert strip(rows) == strip(ref("plain")["rows"])
    # finished: a rerun trains nothing and returns the same
    weights, rows, messages = train(make_params({"train.epochs": 3}), path)
    assert f"resuming from checkpoint {path} after epoch 3" in messages
    assert not any(m.startswith("epoch ") for m in messages)
    assert_same_weights(weights, ref("plain")["weights"])
    assert strip(rows) == strip(ref("plain")["rows"])


def test_checkpoint_beyond_epochs_starts_fresh(ref, tmp_path):
    path = tmp_path / "last.npz"
    path.write_bytes(ref("plain")["snap"][3])
    weights, rows, messages = train(make_params({"train.epochs": 1}), path)
    assert any("beyond epochs=1" in m and str(path) in m for m in messages), messages
    assert_same_weights(weights, weights_of(ref("plain")["snap"][1]))
    assert [r["epoch"] for r in rows] == [1]


# ---------------------------------------------------------------- divergence

def test_absurd_lr_scale_diverges_in_the_first_epoch(tmp_path):
    # float32 steps overflow to inf: the loss is NaN from the second batch on. (A merely large
    # factor such as 1e6 does not make the loss non-finite: the squash bounds every output.)
    path = tmp_path / "last.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported once, as TrainingDiverged, not as numpy warnings
        with pytest.raises(TrainingDiverged) as info:
            train(make_params({"lr_scale": 1e60}), path)
    msg = str(info.value)
    assert isinstance(info.value, Lenet5Error) and "\n" not in msg
    assert "diverged at epoch 1, batch 2/3" in msg and "no checkpoint was written" in msg
    assert not path.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("batch_size, where", [(16, "batch 2/3"), (48, "batch 1/1")],
                         ids=["loss-nan", "weights-nan-after-last-batch"])
def test_divergence_keeps_the_last_good_checkpoint(ref, tmp_path, monkeypatch, batch_size, where):
    params, path = make_params({"train.batch_size": batch_size}), tmp_path / "last.npz"
    if batch_size == 16:
        path.write_bytes(ref("plain")["snap"][1])  # resume after epoch 1, diverge in epoch 2
    else:
        train(make_params({"train.batch_size": batch_size, "train.epochs": 1}), path)
    before = path.read_bytes()
    real = train_module.eta_for_epoch  # an infinite step from epoch 2 on: the weights overflow there
    monkeypatch.setattr(train_module, "eta_for_epoch", lambda e, s, *a: real(e, s, *a) if e < 2 else float("inf"))
    with pytest.raises(TrainingDiverged) as info:
        train(params, path)
    msg = str(info.value)
    assert f"diverged at epoch 2, {where}" in msg and f"checkpoint of epoch 1 ({path}) is kept" in msg
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.npz"]  # no temp file left
