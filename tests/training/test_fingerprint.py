"""Tests of lenet5.training.fingerprint: parameter fingerprints, and the training code that the
checkpoint hashes being exactly the train stage's code deps in dvc.yaml."""

import yaml

from conftest import ROOT
from lenet5.pipeline.config import load_params
from lenet5.training.fingerprint import TRAINING_CODE, code_digest, code_files, params_fingerprint

REPO_PARAMS = ROOT / "params.yaml"


def test_training_code_is_the_train_stages_code_deps():
    deps = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]["train"]["deps"]
    code = [d for d in deps if d.startswith("lenet5/")]
    assert code == [f"lenet5/{c}" for c in TRAINING_CODE]
    assert set(deps) - set(code) == {"stages/train.py", "data/prepared"}


def test_code_digest_covers_every_module_of_those_folders():
    files = code_files()
    for must in ("model.py", "nn/layers.py", "parallel/pool.py", "training/loop.py", "pipeline/config.py"):
        assert must in files
    assert not any("__pycache__" in f for f in files)
    assert "cli/app.py" not in files and "evaluation/plots.py" not in files
    assert code_digest() == code_digest()


def test_fingerprint_ignores_int_float_and_key_order():
    a = {"lr_scale": 50, "train": {"epochs": 20, "mu": 0.02}}
    b = {"train": {"mu": 0.02, "epochs": 20.0}, "lr_scale": 50.0}
    fa = params_fingerprint(a)
    assert fa == params_fingerprint(b)
    assert len(fa) == 64 and int(fa, 16) >= 0
    assert fa == params_fingerprint(dict(a))  # stable across calls


def test_fingerprint_changes_with_any_value():
    a = {"lr_scale": 50, "train": {"epochs": 20, "mu": 0.02, "enabled": False}}
    fa = params_fingerprint(a)
    for change in ({"lr_scale": 51}, {"train": {"epochs": 21, "mu": 0.02, "enabled": False}},
                   {"train": {"epochs": 20, "mu": 0.020001, "enabled": False}},
                   {"train": {"epochs": 20, "mu": 0.02, "enabled": 0}}):
        assert params_fingerprint({**a, **change}) != fa, change


def test_fingerprint_of_a_block_equals_that_of_its_dict():
    p = load_params(REPO_PARAMS)
    assert params_fingerprint(p.train) == params_fingerprint(p.train.to_dict())
    assert params_fingerprint(p.fetch) == params_fingerprint({**p.fetch.to_dict(), "timeout": 30.0})
