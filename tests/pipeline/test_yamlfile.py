"""Tests of lenet5.pipeline.yamlfile: one reading with DVC, and limits that hold on hostile files."""

import time

import pytest

from conftest import ROOT
from lenet5.errors import Lenet5Error
from lenet5.pipeline import yamlfile
from lenet5.pipeline.config import load_params
from lenet5.pipeline.yamlfile import read_yaml

TEXT = (ROOT / "params.yaml").read_text(encoding="utf-8")
TRICKY = ["010", "0o10", "0x10", "1:20", "1e2", "1E2", "1_000", "+5", "on", "yes", "off", "no", "y",
          "True", "TRUE", "~", "null", ".inf", "-.inf", ".nan", "1.", ".5", "0b11", "2001-12-14", "'010'"]
KEYS = {"train.epochs": "  epochs: 20\n", "lr_scale": "lr_scale: 100.0\n", "distort.enabled": "  enabled: true"}


def dvc_reading(text):
    """What DVC itself reads from the text (``dvc params diff`` and ``dvc exp`` use this loader)."""
    from dvc.utils.serialize import parse_yaml

    return parse_yaml(text, "params.yaml")


def with_value(key, scalar):
    old = KEYS[key]
    indent, _, rest = old.partition(key.rsplit(".", 1)[-1] + ":")
    return TEXT.replace(old, f"{indent}{key.rsplit('.', 1)[-1]}: {scalar}" + ("\n" if old.endswith("\n") else ""), 1)


def lookup(d, key):
    for part in key.split("."):
        d = d[part]
    return d


@pytest.mark.parametrize("key", list(KEYS))
@pytest.mark.parametrize("scalar", TRICKY)
def test_tricky_scalars_read_as_dvc_reads_them_or_are_refused(tmp_path, key, scalar):
    text = with_value(key, scalar)
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    theirs = lookup(dvc_reading(text), key)
    raw = lookup(read_yaml(path), key)
    assert type(raw) is type(theirs) and (raw == theirs or raw != raw and theirs != theirs)
    try:
        ours = lookup(load_params(path).to_dict(), key)
    except Lenet5Error as e:
        assert "\n" not in str(e) and str(e).startswith(f"{path}: {key} must be")
        return
    assert ours == theirs and type(ours) is type(theirs) or (type(theirs) is int and ours == float(theirs))


def test_yaml_1_2_values(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(with_value("train.epochs", "010").replace("lr_scale: 100.0", "lr_scale: 1e2"))
    p = load_params(path)
    assert p.train.epochs == 10 and p.lr_scale == 100.0  # PyYAML (YAML 1.1) read 8 and the string '1e2'


def error_of(tmp_path, text=None, path=None):
    if path is None:
        path = tmp_path / "params.yaml"
        path.write_text(text, encoding="utf-8")
    t0 = time.perf_counter()
    with pytest.raises(Lenet5Error) as info:
        load_params(path)
    assert time.perf_counter() - t0 < 2.0
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(str(path)) and len(msg) < 300
    return msg


def test_billion_laughs_is_refused_at_once(tmp_path):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    msg = error_of(tmp_path, "\n".join(lines) + "\n")
    assert f"more than {yamlfile.MAX_NODES} values once aliases are expanded" in msg


def test_small_aliases_are_expanded_as_dvc_does(tmp_path):
    text = TEXT.replace("  batch_size: 1000", "  batch_size: &b 40").replace("  gallery: 40", "  gallery: *b")
    path = tmp_path / "params.yaml"
    path.write_text(text)
    assert load_params(path).evaluate.gallery == 40 == dvc_reading(text)["evaluate"]["gallery"]


@pytest.mark.parametrize("text", ["a: " + "[" * 20_000 + "]" * 20_000 + "\n",
                                  "".join(" " * i + f"k{i}:\n" for i in range(500)) + " " * 500 + "v: 1\n"])
def test_deep_nesting_is_refused(tmp_path, text):
    assert f"nested more than {yamlfile.MAX_DEPTH} levels deep" in error_of(tmp_path, text)


def test_a_huge_scalar_is_refused(tmp_path):
    msg = error_of(tmp_path, with_value("train.epochs", "9" * 5000))
    assert msg.endswith(f"a value of 5000 characters; expected at most {yamlfile.MAX_SCALAR}")


def test_size_cap_and_endless_files(tmp_path):
    big = tmp_path / "params.yaml"
    big.write_text(TEXT + "#" * yamlfile.MAX_BYTES)
    assert f"larger than {yamlfile.MAX_BYTES} bytes" in error_of(tmp_path, path=big)
    assert "larger than" in error_of(tmp_path, path="/dev/zero")
    assert "is a folder" in error_of(tmp_path, path=tmp_path)


def test_nested_duplicate_key_keeps_its_path(tmp_path):
    text = TEXT.replace("  gallery: 40", "  gallery: 41\n  gallery: 40")
    line = text.splitlines().index("  gallery: 41") + 2  # 1-based line of the second one
    assert error_of(tmp_path, text).endswith(f":{line}:3: duplicate key 'evaluate.gallery'")
    other = TEXT.replace("train:\n", "train:\n  x: {a: 1, a: 2}\n")
    assert error_of(tmp_path, other).endswith(": duplicate key 'train.x.a'")
