"""Shared test helpers: the project root, the real-MNIST mirror, the committed params with
overrides, tiny IDX files, finite differences, and throwaway DVC repositories.

The test folders mirror ``lenet5/``; a test module imports these helpers with ``from conftest import``
(this folder is on ``sys.path`` while the tests run). ``reference.py`` is the independent
per-pattern oracle. ``dvc_repo`` copies the project's files (tracked, plus untracked files git does not ignore) into a
fresh git repository with reduced parameters, so ``dvc repro`` runs the real pipeline in seconds.
DVC runs in a subprocess with analytics off, its own site-cache and global-config folders, no
global git config, and ``PYTHONPATH`` on the copy, so the stages run the copied code.
"""

import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MNIST_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# params for a pipeline run of a few seconds (section.key -> value)
REDUCED_PARAMS = {"preprocess.train_limit": 600, "preprocess.test_limit": 300,
                  "train.epochs": 2, "train.batch_size": 32, "evaluate.gallery": 8}


def mnist_dir() -> Path:
    """$MNIST_MIRROR when it is a folder, else ``<root>/../shared/mnist``."""
    env = os.environ.get("MNIST_MIRROR", "")
    if env and Path(env).is_dir():
        return Path(env)
    return ROOT.parent / "shared" / "mnist"


MNIST_DIR = mnist_dir()
HAVE_MNIST = all((MNIST_DIR / f"{n}.gz").is_file() or (MNIST_DIR / n).is_file() for n in MNIST_NAMES)
skip_without_mnist = pytest.mark.skipif(not HAVE_MNIST, reason=f"real MNIST not found in {MNIST_DIR}")


def needs_mnist(test):
    """Decorator: mark ``test`` as needing real MNIST and skip it when the mirror is absent."""
    return skip_without_mnist(pytest.mark.mnist(test))


def committed_params(changes=None) -> dict:
    """The committed params.yaml as a dict, with ``changes`` (dotted key -> value) applied.

    Every key must already exist, so a renamed parameter fails the test instead of being ignored.
    """
    d = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    for key, value in (changes or {}).items():
        *blocks, leaf = key.split(".")
        node = d
        for b in blocks:
            node = node[b]
        assert leaf in node, key
        node[leaf] = value
    return d


# IDX type code per numpy dtype (lenet5/data/idx.py reads them)
_IDX_CODES = {"uint8": 0x08, "int8": 0x09, "int16": 0x0B, "int32": 0x0C, "float32": 0x0D, "float64": 0x0E}


def write_idx(path, arr) -> None:
    """Write ``arr`` as a raw (decompressed) IDX file: magic, big-endian dims, big-endian data."""
    arr = np.asarray(arr)
    code = _IDX_CODES[arr.dtype.name]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    Path(path).write_bytes(header + arr.astype(arr.dtype.newbyteorder(">")).tobytes())


def rel_error(a, b) -> float:
    """Largest difference relative to the largest magnitude of the two arrays."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), np.max(np.abs(b)), 1e-300))


def numeric_grad(f, arr, eps=1e-6):
    """Central differences of the scalar f() with respect to every entry of ``arr`` (perturbed in place)."""
    g = np.zeros_like(arr)
    for idx in np.ndindex(arr.shape):
        old = arr[idx]
        arr[idx] = old + eps
        fp = f()
        arr[idx] = old - eps
        fm = f()
        arr[idx] = old
        g[idx] = (fp - fm) / (2 * eps)
    return g


# ---------------------------------------------------------------- project folders for the stage scripts
# params for a train stage of about a second on tiny random data
SMALL = {"lr_scale": 1.0, "train.epochs": 4, "train.batch_size": 16, "train.hessian_samples": 32,
         "evaluate.batch_size": 64, "evaluate.gallery": 8}



def params_text(changes=None):
    """The committed params.yaml with SMALL and ``changes`` (dotted key -> value) applied, as YAML."""
    return yaml.safe_dump(committed_params({**SMALL, **(changes or {})}), sort_keys=False)


def make_project(folder, changes=None, n_train=96, n_test=32, seed=0):
    """A project folder: params.yaml and data/prepared/*.npy of random images; returns the folder."""
    from lenet5.store.prepared import write_prepared

    folder = Path(folder)
    prepared = folder / "data" / "prepared"
    prepared.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.uniform(-0.1, 1.175, size=(n, 1, 32, 32)).astype(np.float32)  # (N, 1, 32, 32)
        splits[split] = (images, rng.integers(0, 10, size=n).astype(np.uint8))  # labels (N,)
    write_prepared(prepared, splits)
    (folder / "params.yaml").write_text(params_text(changes), encoding="utf-8")
    return folder


def stage_cmd(name):
    """The command DVC runs for stage ``name`` (dvc.yaml: ``python stages/<name>.py``)."""
    return [sys.executable, str(ROOT / "stages" / f"{name}.py")]


def stage_env():
    """This environment with the repository importable and tracebacks off."""
    env = {k: v for k, v in os.environ.items() if k != "LENET5_DEBUG"}
    env["PYTHONPATH"] = str(ROOT)
    return env


def run(name, folder, timeout=120, env=None):
    """Run stage ``name`` in ``folder`` to completion; returns the CompletedProcess (text)."""
    return subprocess.run(stage_cmd(name), cwd=folder, env={**stage_env(), **(env or {})}, capture_output=True,
                          text=True, timeout=timeout)


def npy_header(shape, descr="<f4") -> bytes:
    """The header of a ``.npy`` file declaring ``shape`` and ``descr`` (for crafted files)."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def invoke(*args):
    """Run the ``lenet5`` command line in-process (typer's CliRunner) with ``args``."""
    from typer.testing import CliRunner

    from lenet5.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def one_error_line(result, *fragments):
    """Assert exit 1 and exactly one stderr line ``error: ...`` holding every fragment; return it."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for f in fragments:
        assert str(f) in lines[0], (f, lines[0])
    return lines[0]


def _venv_bin() -> Path:
    """The folder of the running interpreter's scripts (``dvc``, ``lenet5``, ``python``)."""
    local = ROOT / ".venv" / "bin"
    return local if (local / "dvc").exists() else Path(sys.executable).parent


VENV_BIN = _venv_bin()


def set_params(path, updates: dict) -> None:
    """Edit ``params.yaml`` text in place so its comments stay; ``updates`` maps ``key`` or
    ``section.key`` to a new value (lists are written in flow style). Fails if a key is missing."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    for dotted, value in updates.items():
        *section, key = dotted.split(".")
        start, indent = 0, ""
        if section:
            start = 1 + next(i for i, ln in enumerate(lines) if re.match(rf"{section[0]}:\s*(#.*)?$", ln))
            indent = "  "
        stop = next((j for j in range(start, len(lines)) if section and re.match(r"[^\s#]", lines[j])), len(lines))
        pat = re.compile(rf"{indent}{re.escape(key)}:\s*[^#\n]*?(\s*#.*)?$")
        i = next((i for i in range(start, stop) if pat.match(lines[i].rstrip("\n"))), None)
        if i is None:
            raise KeyError(f"{path}: no key {dotted}")
        m = pat.match(lines[i].rstrip("\n"))
        end = i + 1
        while end < len(lines) and re.match(rf"{indent}\s+- ", lines[end]):  # a block list's items
            end += 1
        lines[i:end] = [f"{indent}{key}: {json.dumps(value)}{m.group(1) or ''}\n"]
    path.write_text("".join(lines), encoding="utf-8")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for dotted, value in updates.items():
        node = data
        for part in dotted.split("."):
            node = node[part]
        assert node == value, f"{path}: {dotted} is {node!r} after the edit, expected {value!r}"


def dvc_env(home: Path, mirror=MNIST_DIR) -> dict:
    """Environment for dvc/git subprocesses; ``mirror=None`` leaves MNIST_MIRROR unset."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GIT_", "DVC_")) and k not in ("MNIST_MIRROR", "LENET5_DEBUG", "PYTHONPATH")}
    home.mkdir(parents=True, exist_ok=True)
    (home / "gitconfig").touch()
    env.update(DVC_NO_ANALYTICS="1", PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
               GIT_CONFIG_GLOBAL=str(home / "gitconfig"), GIT_CONFIG_NOSYSTEM="1",
               DVC_SITE_CACHE_DIR=str(home / "site-cache"), DVC_GLOBAL_CONFIG_DIR=str(home / "dvc-global"),
               PYTHONDONTWRITEBYTECODE="1")
    if mirror is not None:
        env["MNIST_MIRROR"] = str(mirror)
    return env


class DvcRepo:
    """A throwaway git + DVC repository holding a copy of the project."""

    def __init__(self, path: Path, home: Path, mirror=MNIST_DIR):
        self.path, self.home = Path(path), Path(home)
        self.env = dvc_env(self.home, mirror)
        self.env["PYTHONPATH"] = str(self.path)  # the stages import the copied lenet5, not the editable one

    def run(self, *args, check=True, timeout=300, cwd=None):
        """Run ``args`` here (or in ``cwd``); returns the CompletedProcess with ``.out`` = stdout + stderr."""
        if args[0] in ("dvc", "lenet5", "python"):
            args = (str(VENV_BIN / args[0]), *args[1:])
        p = subprocess.run(args, cwd=cwd or self.path, env=self.env, capture_output=True, text=True, timeout=timeout)
        p.out = p.stdout + p.stderr
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(map(str, args))} exited {p.returncode}:\n{p.out}")
        return p

    def dvc(self, *args, check=True):
        return self.run("dvc", *args, check=check)

    def git(self, *args, check=True):
        return self.run("git", *args, check=check)

    def set_params(self, **updates):
        """``repo.set_params(**{"train.epochs": 1})``; see the module-level ``set_params``."""
        set_params(self.path / "params.yaml", updates)

    def read_json(self, rel):
        return json.loads((self.path / rel).read_text(encoding="utf-8"))

    def copy(self, dest: Path, home: Path) -> "DvcRepo":
        """A full copy (work tree, .git, .dvc cache) at ``dest``, for tests that change it."""
        shutil.copytree(self.path, dest, symlinks=True)
        return DvcRepo(dest, home, self.env.get("MNIST_MIRROR"))


def project_files() -> list[str]:
    """The project's files: tracked ones still present, plus untracked ones git does not ignore."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, check=True).stdout.decode()
    return sorted({f for f in out.split("\0") if f and (ROOT / f).is_file()})


def make_dvc_repo(path: Path, home: Path, params=None, mirror=MNIST_DIR) -> DvcRepo:
    """Copy the project to ``path``, apply ``REDUCED_PARAMS`` (and ``params``), ``git init`` and commit."""
    for rel in project_files():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, path / rel)
    repo = DvcRepo(path, home, mirror)
    repo.set_params(**{**REDUCED_PARAMS, **(params or {})})
    repo.git("init", "-q", "-b", "main")
    repo.git("config", "user.name", "Test")
    repo.git("config", "user.email", "test@example.com")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "project")
    return repo


@pytest.fixture
def dvc_repo(tmp_path) -> DvcRepo:
    """A fresh repository holding the project with reduced params (nothing run yet)."""
    return make_dvc_repo(tmp_path / "repo", tmp_path / "home")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """An untrained LeNet5(seed=0) saved as .npz; returns (path, net)."""
    from lenet5.model import LeNet5

    path = tmp_path_factory.mktemp("model") / "lenet5.npz"
    net = LeNet5(seed=0)
    net.save(path)
    return path, net
