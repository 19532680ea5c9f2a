"""The pipeline parameters: ``params.yaml`` checked and turned into frozen dataclasses.

Each YAML key is a dataclass field whose metadata holds its check, so the schema is written once.
The file is read by ``yamlfile.py`` (as DVC reads it, within limits). A missing file, bad YAML,
a missing, unknown or duplicated key, a wrong type or a value out of range
raises a one-line ``Lenet5Error`` that starts with the file name (and line:column where YAML knows
it) and names the key and the value. Floats accept ints (``dvc exp run -S lr_scale=50`` writes 50.0
back as 50); bools are never numbers and numbers never bools. This is the one place where a
parameter's bounds are written; the library below trusts what it is given.
"""

import dataclasses
import difflib
import math
import numbers

import numpy as np
from ..errors import Lenet5Error
from .yamlfile import read_yaml


class _Bad(Exception):
    """A value that fails its check; ``sub`` is appended to the key (e.g. ``[1]``)."""

    def __init__(self, text, sub=""):
        super().__init__(text)
        self.sub = sub


def _show(v) -> str:
    """A value as it appears in a message: its repr (YAML's null/true/false), at most 60 characters."""
    r = "null" if v is None else str(bool(v)).lower() if isinstance(v, (bool, np.bool_)) else repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def _num(kind, lo, hi=None, lo_open=False, hi_open=False):
    """A check for an ``int`` or a finite ``float`` (``kind``) within the given bounds."""
    noun, abstract = ("an integer", numbers.Integral) if kind is int else ("a number", numbers.Real)
    if hi is None:
        where = f"{'>' if lo_open else '>='} {lo}"
    else:
        where = f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"

    def check(v):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, abstract):
            raise _Bad(f"must be {noun}, got {_show(v)}")
        try:
            x = kind(v)
        except OverflowError:  # an int too big for a float
            x = math.inf
        if kind is float and not math.isfinite(x):
            raise _Bad(f"must be a finite number, got {_show(v)}")
        if (x <= lo if lo_open else x < lo) or (hi is not None and (x >= hi if hi_open else x > hi)):
            raise _Bad(f"must be {where}, got {_show(v)}")
        return x

    return check


def _choice(*options):
    """A check for one of the given strings."""
    listed = ", ".join(repr(o) for o in options)

    def check(v):
        if not isinstance(v, str) or v not in options:
            raise _Bad(f"must be one of {listed}, got {_show(v)}")
        return v
    return check


def _flag(v):
    """A check for a YAML ``true``/``false``."""
    if not isinstance(v, (bool, np.bool_)):
        raise _Bad(f"must be true or false, got {_show(v)}")
    return bool(v)


def _mirrors(v):
    """A check for a non-empty list of non-empty strings; returns a tuple. What a source may be (a
    folder, file://, http(s)://) is ``data/fetch.py``'s rule, applied before anything is fetched."""
    if not isinstance(v, (list, tuple)) or not v:
        raise _Bad(f"must be a non-empty list of URLs or folders, got {_show(v)}")
    for i, m in enumerate(v):
        if not isinstance(m, str) or not m.strip():
            raise _Bad(f"must be a URL or a folder, got {_show(m)}", sub=f"[{i}]")
    return tuple(v)


def _spec(check=None):
    """A dataclass field carrying its check (None for a nested block)."""
    return dataclasses.field(metadata={"check": check})


class _Block:
    """Shared by every parameter block: conversion back to plain data."""

    def to_dict(self) -> dict:
        """The block as plain dicts, lists and scalars, with the same structure as the YAML."""
        return _plain(self)


def _plain(obj):
    """Dataclasses as dicts and tuples as lists, recursively."""
    if dataclasses.is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_plain(x) for x in obj]
    return obj


@dataclasses.dataclass(frozen=True)
class FetchParams(_Block):
    """Where and how the MNIST files are downloaded (stage fetch)."""

    mirrors: tuple[str, ...] = _spec(_mirrors)  # URLs or folders, tried in order
    timeout: float = _spec(_num(float, 0, 3600, lo_open=True))  # seconds without data
    retries: int = _spec(_num(int, 0, 100))  # extra attempts per file and mirror


@dataclasses.dataclass(frozen=True)
class PreprocessParams(_Block):
    """How much of MNIST is kept (stage preprocess); 0 means all."""

    train_limit: int = _spec(_num(int, 0, 10**7))
    test_limit: int = _spec(_num(int, 0, 10**7))


@dataclasses.dataclass(frozen=True)
class TrainParams(_Block):
    """Training with stochastic diagonal Levenberg-Marquardt (stage train)."""

    epochs: int = _spec(_num(int, 1, 1000))
    batch_size: int = _spec(_num(int, 1, 100_000))
    criterion: str = _spec(_choice("mse", "map"))  # eq. 8 or eq. 9
    j: float = _spec(_num(float, 0, 1000))  # constant j of eq. 9, positive in the paper
    mu: float = _spec(_num(float, 0, 1000, lo_open=True))  # SDLM damping (eq. 21)
    start_epochs: int = _spec(_num(int, 0, 1000))  # epochs run at start_factor x eta
    start_factor: float = _spec(_num(float, 0, 1, lo_open=True))  # 1.0 = the paper's schedule
    hessian_samples: int = _spec(_num(int, 1, 100_000))
    momentum: float = _spec(_num(float, 0, 1, hi_open=True))
    seed: int = _spec(_num(int, 0, 2**32 - 1))
    dtype: str = _spec(_choice("float32", "float64"))
    threads: int = _spec(_num(int, 0, 64))  # CPU cores sharing each batch (processes); 0 = one per CPU


@dataclasses.dataclass(frozen=True)
class DistortParams(_Block):
    """Random affine distortions of the training digits (paper section III.C)."""

    enabled: bool = _spec(_flag)
    translate: float = _spec(_num(float, 0, 8))  # pixels, each axis
    scale: float = _spec(_num(float, 0, 0.5, hi_open=True))
    squeeze: float = _spec(_num(float, 0, 0.5, hi_open=True))
    shear: float = _spec(_num(float, 0, 1, hi_open=True))
    originals: float = _spec(_num(float, 0, 1))  # share of each batch left undistorted (paper: 0.1)


@dataclasses.dataclass(frozen=True)
class EvaluateParams(_Block):
    """Test-set evaluation (stage evaluate)."""

    batch_size: int = _spec(_num(int, 1, 100_000))
    gallery: int = _spec(_num(int, 0, 400))  # misclassified digits shown


@dataclasses.dataclass(frozen=True)
class Params(_Block):
    """All of ``params.yaml``: the global learning-rate factor and one block per stage."""

    lr_scale: float = _spec(_num(float, 0, lo_open=True))  # factor on the eta schedule; overflow = divergence
    fetch: FetchParams = _spec()
    preprocess: PreprocessParams = _spec()
    train: TrainParams = _spec()
    distort: DistortParams = _spec()
    evaluate: EvaluateParams = _spec()


def _all_keys(cls=Params, prefix=""):
    """Every valid dotted key, blocks included, in schema order."""
    out = []
    for f in dataclasses.fields(cls):
        out.append(prefix + f.name)
        if dataclasses.is_dataclass(f.type):
            out += _all_keys(f.type, prefix + f.name + ".")
    return out


def _unknown(key, names, prefix, source):
    """The error for an unknown key, suggesting the closest sibling or else any close key."""
    guess = [prefix + g for g in difflib.get_close_matches(key, names, n=1)]  # leaf names only
    if not guess:  # perhaps a key of another block: 'seed' at the top level -> 'train.seed'
        leaves = {k.rsplit(".", 1)[-1]: k for k in reversed(_all_keys())}  # first key per leaf name
        guess = [leaves[g] for g in difflib.get_close_matches(key, list(leaves), n=1)]
    hint = f" (did you mean '{guess[0]}'?)" if guess else ""
    return Lenet5Error(f"{source}: unknown key '{prefix}{key}'{hint}")


def _build(cls, d, prefix, source):
    """Check the mapping ``d`` against the dataclass ``cls`` and build it."""
    if not isinstance(d, dict):
        what = f"{prefix[:-1]} must be a mapping" if prefix else "top level must be a mapping of blocks"
        got = "an empty file" if d is None and not prefix else _show(d)
        raise Lenet5Error(f"{source}: {what}, got {got}")
    fields = dataclasses.fields(cls)
    names = [f.name for f in fields]
    for k in d:
        if k not in names:
            raise _unknown(str(k), names, prefix, source)
    for n in names:
        if n not in d:
            raise Lenet5Error(f"{source}: missing key '{prefix}{n}'")
    values = {}
    for f in fields:
        key = prefix + f.name
        if dataclasses.is_dataclass(f.type):
            values[f.name] = _build(f.type, d[f.name], key + ".", source)
            continue
        try:
            values[f.name] = f.metadata["check"](d[f.name])
        except _Bad as e:
            raise Lenet5Error(f"{source}: {key}{e.sub} {e}") from None
    return cls(**values)


def params_from_dict(d, source="params.yaml") -> Params:
    """Check a parsed ``params.yaml`` (nested dicts) and return it as ``Params``."""
    return _build(Params, d, "", source)


def load_params(path="params.yaml") -> Params:
    """Read (as DVC reads it, within limits: ``yamlfile.py``), check and return the file at ``path``."""
    return params_from_dict(read_yaml(path), source=str(path))
