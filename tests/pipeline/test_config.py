"""Tests of lenet5.pipeline.config: the committed params.yaml and every kind of error."""

import dataclasses

import pytest

from conftest import ROOT
from lenet5.errors import Lenet5Error
from lenet5.pipeline.config import Params, TrainParams, load_params, params_from_dict

REPO_PARAMS = ROOT / "params.yaml"
LRS_LINE = next(line for line in REPO_PARAMS.read_text().splitlines() if line.startswith("lr_scale:"))
TEXT = REPO_PARAMS.read_text(encoding="utf-8")


def write(tmp_path, text, name="params.yaml"):
    """Write ``text`` to a file in ``tmp_path`` and return its path."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def edited(tmp_path, old, new):
    """The committed params.yaml with ``old`` replaced once by ``new``, written to tmp_path."""
    assert old in TEXT, old
    return write(tmp_path, TEXT.replace(old, new, 1))


def error_of(path) -> str:
    """The one-line message that loading ``path`` raises."""
    with pytest.raises(Lenet5Error) as info:
        load_params(path)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def good_dict():
    """The committed parameters as nested plain dicts."""
    return load_params(REPO_PARAMS).to_dict()


def test_committed_params_load():
    import yaml

    raw = yaml.safe_load(REPO_PARAMS.read_text())
    p = load_params(REPO_PARAMS)
    assert isinstance(p, Params)
    assert p.lr_scale == raw["lr_scale"] and isinstance(p.lr_scale, float)
    assert p.train.epochs == raw["train"]["epochs"] and p.train.criterion == raw["train"]["criterion"]
    assert p.fetch.mirrors[0].startswith("https://") and len(p.fetch.mirrors) == 2
    assert p.distort.enabled is raw["distort"]["enabled"] and p.evaluate.gallery == raw["evaluate"]["gallery"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.train.epochs = 3


def test_to_dict_round_trips_and_matches_yaml_structure():
    import yaml

    p = load_params(REPO_PARAMS)
    d = p.to_dict()
    assert d == yaml.safe_load(TEXT)  # same keys, same values, mirrors as a list
    assert isinstance(d["fetch"]["mirrors"], list)
    assert params_from_dict(d) == p


def test_field_names_are_the_yaml_keys():
    raw = __import__("yaml").safe_load(TEXT)
    assert [f.name for f in dataclasses.fields(Params)] == list(raw)
    assert [f.name for f in dataclasses.fields(TrainParams)] == list(raw["train"])


def test_missing_file(tmp_path):
    msg = error_of(tmp_path / "params.yaml")
    assert msg.startswith(f"{tmp_path / 'params.yaml'}: not found (expected")


def test_invalid_yaml_reports_line_and_column(tmp_path):
    path = edited(tmp_path, "  epochs: 20\n", "  epochs: 20\n bad: [1,\n")
    line = TEXT.splitlines().index("  epochs: 20") + 2  # 1-based line of " bad"
    msg = error_of(path)
    assert msg.startswith(f"{path}:{line}:")
    assert ": invalid YAML: " in msg


def test_tab_and_duplicate_key_report_lines(tmp_path):
    assert ":1: invalid YAML: " in error_of(edited(tmp_path, "  epochs: 20", "\tepochs: 20"))
    msg = error_of(edited(tmp_path, "  batch_size: 32\n", "  batch_size: 32\n  epochs: 3\n"))
    line = TEXT.splitlines().index("  batch_size: 32") + 2
    assert msg == f"{tmp_path / 'params.yaml'}:{line}:3: duplicate key 'train.epochs'"


@pytest.mark.parametrize("text, got", [("- 1\n- 2\n", "[1, 2]"), ("# only a comment\n", "an empty file")])
def test_top_level_must_be_a_mapping(tmp_path, text, got):
    msg = error_of(write(tmp_path, text))
    assert "top level must be a mapping" in msg and msg.endswith(f"got {got}")


def test_missing_key_and_block(tmp_path):
    msg = error_of(edited(tmp_path, "  epochs: 20\n", ""))
    assert msg == f"{tmp_path / 'params.yaml'}: missing key 'train.epochs'"
    d = good_dict()
    del d["evaluate"]
    with pytest.raises(Lenet5Error, match=r"^params.yaml: missing key 'evaluate'$"):
        params_from_dict(d)


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("  epochs:", "  epoch:", "unknown key 'train.epoch' (did you mean 'train.epochs'?)"),
        ("train:", "trian:", "unknown key 'trian' (did you mean 'train'?)"),
        (LRS_LINE, LRS_LINE + "\nseed: 1", "unknown key 'seed' (did you mean 'train.seed'?)"),
        ("  gallery: 40", "  gallery: 40\n  zzzz: 1", "unknown key 'evaluate.zzzz'"),
    ],
)
def test_unknown_key_suggests_the_closest(tmp_path, old, new, message):
    msg = error_of(edited(tmp_path, old, new))
    assert msg == f"{tmp_path / 'params.yaml'}: {message}"


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("batch_size: 32", "batch_size: abc", "train.batch_size must be an integer, got 'abc'"),
        ("batch_size: 32", "batch_size: 32.5", "train.batch_size must be an integer, got 32.5"),
        ("criterion: map", "criterion: MAP", "train.criterion must be one of 'mse', 'map', got 'MAP'"),
        ("dtype: float32", "dtype: float16", "train.dtype must be one of 'float32', 'float64', got 'float16'"),
        ("timeout: 30", "timeout: fast", "fetch.timeout must be a number, got 'fast'"),
        ("test_limit: 0", "test_limit:", "preprocess.test_limit must be an integer, got null"),
        ("retries: 2", "retries: [2]", "fetch.retries must be an integer, got [2]"),
    ],
)
def test_wrong_type(tmp_path, old, new, message):
    msg = error_of(edited(tmp_path, old, new))
    assert msg == f"{tmp_path / 'params.yaml'}: {message}"


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("lr_scale", 0, "lr_scale must be > 0, got 0"),
        ("lr_scale", float("inf"), "lr_scale must be a finite number, got inf"),
        ("lr_scale", float("nan"), "lr_scale must be a finite number, got nan"),
        ("fetch.timeout", -1.0, "fetch.timeout must be in (0, 3600], got -1.0"),
        ("fetch.retries", -1, "fetch.retries must be in [0, 100], got -1"),
        ("preprocess.train_limit", -5, "preprocess.train_limit must be in [0, 10000000], got -5"),
        ("train.epochs", 0, "train.epochs must be in [1, 1000], got 0"),
        ("train.epochs", 1001, "train.epochs must be in [1, 1000], got 1001"),
        ("train.j", -0.1, "train.j must be in [0, 1000], got -0.1"),
        ("train.mu", 0.0, "train.mu must be in (0, 1000], got 0.0"),
        ("train.start_factor", 0.0, "train.start_factor must be in (0, 1], got 0.0"),
        ("train.start_factor", 1.5, "train.start_factor must be in (0, 1], got 1.5"),
        ("train.start_epochs", -1, "train.start_epochs must be in [0, 1000], got -1"),
        ("train.hessian_samples", 0, "train.hessian_samples must be in [1, 100000], got 0"),
        ("train.momentum", 1.0, "train.momentum must be in [0, 1), got 1.0"),
        ("train.seed", -1, "train.seed must be in [0, 4294967295], got -1"),
        ("distort.translate", 8.5, "distort.translate must be in [0, 8], got 8.5"),
        ("distort.scale", 0.5, "distort.scale must be in [0, 0.5), got 0.5"),
        ("distort.squeeze", -0.1, "distort.squeeze must be in [0, 0.5), got -0.1"),
        ("distort.shear", 1, "distort.shear must be in [0, 1), got 1"),
        ("distort.originals", 1.5, "distort.originals must be in [0, 1], got 1.5"),
        ("distort.originals", -0.1, "distort.originals must be in [0, 1], got -0.1"),
        ("evaluate.batch_size", 0, "evaluate.batch_size must be in [1, 100000], got 0"),
        ("fetch.timeout", 1.0e10, "fetch.timeout must be in (0, 3600], got 10000000000.0"),
        ("fetch.retries", 10**9, "fetch.retries must be in [0, 100], got 1000000000"),
        ("preprocess.test_limit", 10**7 + 1, "preprocess.test_limit must be in [0, 10000000], got 10000001"),
        ("train.batch_size", 100_001, "train.batch_size must be in [1, 100000], got 100001"),
        ("train.hessian_samples", 100_001, "train.hessian_samples must be in [1, 100000], got 100001"),
        ("train.seed", 2**32, "train.seed must be in [0, 4294967295], got 4294967296"),
        ("train.j", 1000.5, "train.j must be in [0, 1000], got 1000.5"),
        ("train.mu", 1e300, "train.mu must be in (0, 1000], got 1e+300"),
        ("evaluate.batch_size", 100_001, "evaluate.batch_size must be in [1, 100000], got 100001"),
        ("evaluate.gallery", 401, "evaluate.gallery must be in [0, 400], got 401"),
        ("fetch.mirrors", [], "fetch.mirrors must be a non-empty list of URLs or folders, got []"),
        ("fetch.mirrors", [""], "fetch.mirrors[0] must be"),
        ("fetch.mirrors", [3], "fetch.mirrors[0] must be"),
        ("fetch.mirrors", "https://a/", "fetch.mirrors must be a non-empty list"),
    ],
)
def test_out_of_range(key, value, expected):
    d = good_dict()
    block, _, leaf = key.rpartition(".")
    (d[block] if block else d)[leaf] = value
    with pytest.raises(Lenet5Error) as info:
        params_from_dict(d, source="p.yaml")
    assert str(info.value).startswith(f"p.yaml: {expected}")


def test_limits_themselves_are_accepted():
    d = good_dict()
    d["train"].update(epochs=1000, momentum=0.999, j=0, seed=0)
    d["distort"].update(translate=8, scale=0, shear=0.99)
    d["evaluate"]["gallery"] = 400
    d["fetch"]["mirrors"] = ["file:///srv/mnist", "/srv/mnist", "mnist", "HTTP://x/"]
    p = params_from_dict(d)
    assert p.train.momentum == 0.999 and p.distort.translate == 8.0 and p.evaluate.gallery == 400
    assert p.fetch.mirrors == ("file:///srv/mnist", "/srv/mnist", "mnist", "HTTP://x/")


def test_ints_are_accepted_as_floats(tmp_path):
    # dvc exp run -S lr_scale=50 writes the value back as an int
    whole = load_params(REPO_PARAMS).lr_scale
    assert whole == int(whole), "the committed lr_scale is a whole number, written as a float"
    p = load_params(edited(tmp_path, LRS_LINE, f"lr_scale: {int(whole)}"))
    assert p.lr_scale == whole and type(p.lr_scale) is float
    assert p.fetch.timeout == 30.0 and type(p.fetch.timeout) is float
    assert p == load_params(REPO_PARAMS)


def test_bools_are_not_numbers_and_numbers_not_bools(tmp_path):
    msg = error_of(edited(tmp_path, LRS_LINE, "lr_scale: true"))
    assert msg.endswith("lr_scale must be a number, got true")
    msg = error_of(edited(tmp_path, "  batch_size: 32", "  batch_size: True"))
    assert msg.endswith("train.batch_size must be an integer, got true")
    msg = error_of(edited(tmp_path, "  batch_size: 32", "  batch_size: yes"))  # YAML 1.2: a string
    assert msg.endswith("train.batch_size must be an integer, got 'yes'")
    msg = error_of(edited(tmp_path, "enabled: true", "enabled: 1"))
    assert msg.endswith("distort.enabled must be true or false, got 1")
    assert load_params(edited(tmp_path, "enabled: true", "enabled: false")).distort.enabled is False


def test_block_must_be_a_mapping():
    d = good_dict()
    d["train"] = [1, 2]
    with pytest.raises(Lenet5Error, match=r"^params.yaml: train must be a mapping, got \[1, 2\]$"):
        params_from_dict(d)
