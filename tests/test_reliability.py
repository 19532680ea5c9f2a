"""Reliability of the train stage as DVC runs it: `python stages/train.py` in a project folder.

A run killed with SIGKILL resumes and ends bitwise identical to an uninterrupted one; divergence,
a full disk, bad parameters and missing data each end with one ``error:`` line, exit status 1 and
no half-written or changed output; and no module can unpickle or evaluate code. Every project is a
temp folder with tiny synthetic prepared data, so nothing here needs MNIST or the network.
"""

import errno
import json
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from lenet5.errors import Lenet5Error
from lenet5.model import LeNet5
from lenet5.nn.architecture import PARAM_SHAPES
from lenet5.store.prepared import read_prepared as load_prepared
from lenet5.store.prepared import write_prepared
from lenet5.store.trainlog import read_log_csv
from lenet5.pipeline.commands import run_stage
from conftest import make_project, run, stage_cmd, stage_env

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = (ROOT / "params.yaml").read_text(encoding="utf-8")
def weights(path):
    """The parameter arrays of a model or checkpoint file."""
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in PARAM_SHAPES}


def snapshot(folder):
    """{relative path: bytes} of every file under ``folder`` (empty when it does not exist)."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def error_line(proc):
    """The single ``error:`` line of a failed stage, checked: status 1, no traceback, no warnings."""
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and proc.stderr.rstrip("\n").splitlines()[-1] == errors[0], proc.stderr
    return errors[0]


# ---------------------------------------------------------------- kill -9 and resume

@pytest.mark.slow
def test_killed_training_resumes_bitwise_identical(tmp_path):
    # 640 training images in batches of 16: an epoch takes about 0.3 s (more on a busy machine)
    whole = make_project(tmp_path / "whole", n_train=640, n_test=64)
    done = run("train", whole)
    assert done.returncode == 0, done.stderr
    # epochs 2-4 only: the first also starts the worker process, which can make it several times longer
    timing = json.loads((whole / "logs/train_timing.json").read_text())["epoch_seconds"]
    epoch_s = np.median([timing[e] for e in ("2", "3", "4")])

    killed = make_project(tmp_path / "killed", n_train=640, n_test=64)
    proc = subprocess.Popen(stage_cmd("train"), cwd=killed, env=stage_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (killed / "checkpoints/last.npz").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint was written"
            time.sleep(0.005)
        delay = random.uniform(0.0, 1.5) * epoch_s  # epochs 2-4 remain: die somewhere in 2 or 3
        time.sleep(delay)
        assert proc.poll() is None, f"training ended within {delay:.2f} s, before the kill"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "models/lenet5.npz").exists()
    assert not (killed / "metrics/train_log.csv").exists()  # written with the model, at the end

    again = run("train", killed)
    assert again.returncode == 0, again.stderr
    assert re.search(r"resuming from checkpoint checkpoints/last\.npz after epoch [123]\b", again.stderr), again.stderr

    a, b = weights(whole / "models/lenet5.npz"), weights(killed / "models/lenet5.npz")
    for k in PARAM_SHAPES:
        assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), f"{k} (killed after {delay:.2f} s)"
    assert [r["epoch"] for r in read_log_csv(killed / "metrics/train_log.csv")] == [1, 2, 3, 4]
    for rel in ("metrics/train_log.csv", "metrics/train.json", "models/lenet5.npz", "checkpoints/last.npz"):
        assert (whole / rel).read_bytes() == (killed / rel).read_bytes(), rel  # timings live in logs/

    evals = [subprocess.Popen(stage_cmd("evaluate"), cwd=f, env=stage_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for f in (whole, killed)]  # side by side
    for p in evals:
        err = p.communicate(timeout=120)[1]
        assert p.returncode == 0, err
    for name in ("metrics/eval.json", "metrics/confusion.csv"):
        assert (whole / name).read_bytes() == (killed / name).read_bytes(), name


# ---------------------------------------------------------------- failures: one line, nothing half-written

def test_divergence_through_the_stage(tmp_path):
    # 1e60 overflows the float32 steps, so the loss turns NaN in the first epoch. A factor like 1e6
    # only saturates the squash units: the loss stays finite and no divergence can be seen.
    folder = make_project(tmp_path, {"lr_scale": 1e60, "train.epochs": 2})
    line = error_line(run("train", folder))
    for word in ("diverged", "epoch 1", "batch 2/6"):
        assert word in line, line
    assert not (folder / "models").exists()
    assert snapshot(folder / "checkpoints") == {}


@pytest.mark.parametrize("where", ["models", "checkpoints"])
def test_full_disk_leaves_the_previous_model_intact(tmp_path, monkeypatch, capsys, where):
    folder = make_project(tmp_path, {"train.epochs": 1})
    LeNet5(seed=7).save(folder / "models/lenet5.npz")
    before = (folder / "models/lenet5.npz").read_bytes()
    real_replace = os.replace

    def full_disk(src, dst):
        if Path(dst).parent.name == where:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full_disk)
    monkeypatch.chdir(folder)
    with pytest.raises(SystemExit) as info:
        run_stage("train", [])
    assert info.value.code == 1
    err = capsys.readouterr().err
    target = "models/lenet5.npz" if where == "models" else "checkpoints/last.npz"
    assert err.splitlines()[-1] == f"error: cannot write {target}: {os.strerror(errno.ENOSPC)}", err
    assert (folder / "models/lenet5.npz").read_bytes() == before
    assert os.listdir(folder / "models") == ["lenet5.npz"]  # no temp file left behind
    assert os.listdir(folder / "checkpoints") == (["last.npz"] if where == "models" else [])


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_models_folder(tmp_path):
    folder = make_project(tmp_path, {"train.epochs": 1})
    LeNet5(seed=7).save(folder / "models/lenet5.npz")
    before = (folder / "models/lenet5.npz").read_bytes()
    (folder / "models").chmod(0o500)
    try:
        line = error_line(run("train", folder))
        assert "models/lenet5.npz" in line and "ermission denied" in line, line
        assert (folder / "models/lenet5.npz").read_bytes() == before
        assert os.listdir(folder / "models") == ["lenet5.npz"]
    finally:
        (folder / "models").chmod(0o700)


def _typo(text):
    assert "  epochs: 20\n" in text
    return text.replace("  epochs: 20\n", "  epoch: 3\n", 1)


def _bad_yaml(text):
    assert "  batch_size: 32\n" in text
    return text.replace("  batch_size: 32\n", "  batch_size: 32: 4\n", 1)


@pytest.mark.parametrize("edit, expected", [
    (_typo, r"^error: params\.yaml: unknown key 'train\.epoch' \(did you mean 'train\.epochs'\?\)$"),
    (_bad_yaml, rf"^error: params\.yaml:{COMMITTED.splitlines().index('  batch_size: 32') + 1}:\d+: invalid YAML: "),
    (None, r"^error: params\.yaml: not found"),
], ids=["typo", "invalid-yaml", "missing"])
def test_bad_params_stop_the_stage_before_any_output(tmp_path, edit, expected):
    folder = make_project(tmp_path)
    params = folder / "params.yaml"
    if edit is None:
        params.unlink()
    else:
        params.write_text(edit(COMMITTED), encoding="utf-8")
    if edit is _bad_yaml:
        line = COMMITTED.splitlines().index("  batch_size: 32")
        assert params.read_text().splitlines()[line] == "  batch_size: 32: 4"  # the line the error names
    LeNet5(seed=7).save(folder / "models/lenet5.npz")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints/last.npz").write_bytes(b"an older checkpoint")
    before = {d: snapshot(folder / d) for d in ("models", "checkpoints", "metrics")}
    line = error_line(run("train", folder))
    assert re.search(expected, line), line
    assert {d: snapshot(folder / d) for d in before} == before


def test_missing_prepared_data_asks_for_preprocess(tmp_path):
    folder = make_project(tmp_path)
    for p in (folder / "data/prepared").iterdir():
        p.unlink()
    line = error_line(run("train", folder))
    assert "data/prepared" in line and "not found" in line and "preprocess" in line, line
    assert not (folder / "models").exists() and not (folder / "checkpoints").exists()


def test_non_finite_pixels_are_refused(tmp_path):
    folder = make_project(tmp_path, n_train=8, n_test=4)
    path = folder / "data/prepared/test_images.npy"
    images = np.load(path)
    images[3, 0, 16, 16] = np.nan
    labels = np.load(folder / "data/prepared/test_labels.npy")
    train = load_prepared(folder / "data/prepared")[:2]
    write_prepared(folder / "data/prepared", {"train": train, "test": (images, labels)})  # written whole
    with pytest.raises(Lenet5Error) as info:
        load_prepared(folder / "data/prepared")
    assert f"{path}: holds NaN or infinite pixel values" in str(info.value)


# ---------------------------------------------------------------- no code execution from data

# built from pieces so that this file never matches its own patterns
_P = "pick" + "le"
FORBIDDEN = {
    "import " + _P: re.compile(r"^\s*(import|from)\s+(c?" + _P + r"|dill|marshal|shelve)\b", re.M),
    _P + ".<attr>": re.compile(r"\b" + _P + r"\.\w"),
    "allow_" + _P + "=True": re.compile(r"allow_" + _P + r"\s*=\s*True"),
    "ev" + "al(": re.compile(r"(?<![\w.])ev" + r"al\s*\("),
    "ex" + "ec(": re.compile(r"(?<![\w.])ex" + r"ec\s*\("),
    "yaml.load(": re.compile(r"\byaml\s*\.\s*(load|load_all|full_load|full_load_all|unsafe_load|unsafe_load_all)\s*\("),
    "yaml unsafe Loader": re.compile(r"Loader\s*=\s*(yaml\.)?(Loader|FullLoader|UnsafeLoader)\b"),
}
SAMPLES = {  # one line that each pattern must catch
    "import " + _P: "import " + _P,
    _P + ".<attr>": "obj = " + _P + ".loads(b)",
    "allow_" + _P + "=True": "np.load(f, allow_" + _P + "=True)",
    "ev" + "al(": "x = ev" + "al(text)",
    "ex" + "ec(": "ex" + "ec(code)",
    "yaml.load(": "yaml.lo" + "ad(text)",
    "yaml unsafe Loader": "yaml.load_all(t, Loader=yaml.Un" + "safeLoader)",
}
SAFE = ["yaml.safe_load(text)", "np.load(f, allow_" + _P + "=False)", "model.evaluate(x)",
        "no " + _P + " anywhere.", "yaml.compose(text, Loader=yaml.SafeLoader)", "retrieval(x)"]


def test_forbidden_patterns_catch_what_they_should():
    for name, pattern in FORBIDDEN.items():
        assert pattern.search(SAMPLES[name]), name
        for line in SAFE:
            assert not pattern.search(line), (name, line)


def test_no_module_can_unpickle_or_run_code():
    files = sorted((ROOT / "lenet5").rglob("*.py")) + sorted((ROOT / "stages").rglob("*.py"))
    assert ROOT / "lenet5" / "training" / "loop.py" in files and ROOT / "stages" / "train.py" in files
    hits = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        for name, pattern in FORBIDDEN.items():
            for m in pattern.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                hits.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert hits == []


def test_an_npz_saved_as_npy_is_refused_in_one_line(tmp_path):
    """A zip archive under a .npy name gives a Lenet5Error, not an AttributeError traceback."""
    from lenet5.errors import Lenet5Error
    from lenet5.store.prepared import read_prepared as load_prepared

    import hashlib
    import json

    files = {}
    for split in ("train", "test"):
        for kind in ("images", "labels"):
            path = tmp_path / f"{split}_{kind}.npy"
            with open(path, "wb") as f:
                np.savez(f, a=np.zeros(3))
            files[path.name] = {"bytes": path.stat().st_size, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "lenet5-prepared-1", "files": files}))
    with pytest.raises(Lenet5Error, match="not a readable .npy array"):
        load_prepared(tmp_path)


@pytest.mark.slow
def test_ctrl_c_during_training_leaves_the_earlier_outputs_as_they_were(tmp_path):
    """An interrupted `train` over an earlier run's outputs: exit 130, and its log, model and metrics
    are all still the earlier ones (no new log beside an old model)."""
    folder = make_project(tmp_path / "p", {"train.epochs": 6}, n_train=640, n_test=64)
    earlier = {"metrics/train_log.csv": b"earlier log", "metrics/train.json": b"earlier metrics",
               "models/lenet5.npz": b"earlier model"}
    for rel, data in earlier.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    proc = subprocess.Popen(stage_cmd("train"), cwd=folder, env=stage_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (folder / "checkpoints/last.npz").exists():  # at least one epoch done
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint was written"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and err.rstrip().splitlines()[-1] == "interrupted", err
    for rel, data in earlier.items():
        assert (folder / rel).read_bytes() == data, rel
