"""Crafted files through the real commands, in subprocesses under a 2 GiB address-space limit and a
timeout: each ends in exit status 1 (2 for a command-line value), exactly one ``error:`` line, no
traceback, and the outputs of an earlier run untouched. The odd but legal inputs (a pipe, a file
name that is not UTF-8) work.
"""

import io
import os
import resource
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image, ImageDraw

from conftest import ROOT, npy_header
from lenet5.model import LeNet5
from lenet5.store.prepared import write_prepared

LIMIT = 2 << 30  # bytes of address space for each command
TIMEOUT = 60  # seconds; each command here takes about one
OUTPUTS = ["metrics/eval.json", "metrics/confusion.csv", "plots/confusion.png", "plots/errors.png"]


def _limits():
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def run(folder, *args, shell=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1", "LENET5_DEBUG": ""}
    cmd = ["bash", "-c", shell] if shell else [sys.executable, "-m", "lenet5", *args]
    return subprocess.run(cmd, cwd=folder, env=env, capture_output=True, preexec_fn=_limits, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A folder with params.yaml, a small prepared set, a model, a log, earlier outputs and a digit."""
    folder = tmp_path_factory.mktemp("project")
    (folder / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    rng = np.random.default_rng(0)
    write_prepared(folder / "data/prepared", {
        s: (rng.uniform(-0.1, 1.175, size=(n, 1, 32, 32)).astype(np.float32), rng.integers(0, 10, n).astype(np.uint8))
        for s, n in (("train", 8), ("test", 4))})  # images (N, 1, 32, 32), labels (N,)
    LeNet5(seed=0).save(folder / "models/lenet5.npz")
    (folder / "metrics").mkdir()
    (folder / "metrics/train_log.csv").write_text("epoch,train_loss,train_error,test_error,lr\n"
                                                  "1,0.5,0.1,0.1,0.001\n")
    for name in OUTPUTS:
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes(b"earlier run")
    im = Image.new("L", (80, 100), 255)  # a thick black 7 on white paper
    ImageDraw.Draw(im).line([(20, 15), (62, 15), (34, 90)], fill=0, width=9)
    im.save(folder / "7.png")
    return folder


def _billion_laughs():
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    return "\n".join(lines + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]) + "\n"


def _npz(members, compress=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data, compress_type=compress)
    return buf.getvalue()


PARAMS = {  # params.yaml text -> words of the error
    "billion-laughs": (_billion_laughs(), "once aliases are expanded"),
    "deep": ("a: " + "[" * 20_000 + "]" * 20_000 + "\n", "levels deep"),
    "huge-integer": ((ROOT / "params.yaml").read_text().replace("epochs: 20", "epochs: " + "9" * 5000), "characters"),
    "huge-timeout": ((ROOT / "params.yaml").read_text().replace("timeout: 30", "timeout: 1.0e+10"), "fetch.timeout"),
}


def assert_one_error(p, *words, status=1):
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == status, err
    assert "Traceback" not in err and err.count("error:") == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for w in words:
        assert w in lines[0], (w, lines[0])


def assert_outputs_intact(folder):
    assert all((folder / n).read_bytes() == b"earlier run" for n in OUTPUTS)
    assert not [p for d in ("metrics", "plots") for p in (folder / d).iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("case", list(PARAMS))
def test_hostile_params(project, tmp_path, case):
    text, words = PARAMS[case]
    (tmp_path / "p.yaml").write_text(text)
    assert_one_error(run(project, "evaluate", "--params", tmp_path / "p.yaml"), str(tmp_path / "p.yaml"), words)
    assert_outputs_intact(project)


def test_endless_files(project):
    assert_one_error(run(project, "evaluate", "--params", "/dev/zero"), "/dev/zero", "larger than")
    assert_one_error(run(project, "evaluate", "--log", "/dev/zero"), "/dev/zero", "larger than")
    assert_outputs_intact(project)


@pytest.mark.parametrize("members, compress, words", [
    ({"lenet5/format.npy": npy_header((10**11, 1, 32, 32)) + bytes(4096)}, zipfile.ZIP_STORED, "declares"),
    ({"lenet5/format.npy": bytes(100 << 20)}, zipfile.ZIP_DEFLATED, "is compressed"),  # 100 MB of zeros
    ({"state/x.npy": npy_header((10**10,))}, zipfile.ZIP_STORED, "unexpected member"),
], ids=["header-lies", "zip-bomb", "extra-member"])
def test_hostile_models(project, tmp_path, members, compress, words):
    (tmp_path / "m.npz").write_bytes(_npz(members, compress))
    assert_one_error(run(project, "evaluate", "--model", tmp_path / "m.npz"), "m.npz", words)
    assert_one_error(run(project, "predict", "--model", tmp_path / "m.npz", "7.png"), "m.npz", words)
    assert_outputs_intact(project)


def test_evaluate_checks_the_log_before_writing(project, tmp_path):
    (tmp_path / "log.csv").write_text("epoch,train_loss\n1,2\n")
    assert_one_error(run(project, "evaluate", "--log", tmp_path / "log.csv"), "log.csv", "header")
    assert_outputs_intact(project)


def test_an_absurd_bench_size_is_a_command_line_error(project):
    assert_one_error(run(project, "bench", "--images", "1000000000000"), "--images", status=2)


def test_predict_reads_a_pipe_and_a_file_name_that_is_not_utf8(project):
    p = run(project, shell=f"{sys.executable} -m lenet5 predict <(cat 7.png)")
    assert p.returncode == 0 and p.stdout.decode().startswith("/dev/fd/"), p.stderr
    odd = os.fsencode(project) + b"/\xff.png"
    with open(odd, "wb") as f:
        f.write((project / "7.png").read_bytes())
    p = run(project, "predict", odd.decode("utf-8", "surrogateescape"))
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().startswith(f"{project}/\\xff.png: ") and b"confidence" in p.stdout, p.stdout


def test_a_run_cleans_the_temp_files_a_killed_run_left(project, tmp_path):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(project, folder)
    stale = [folder / "metrics/.eval.json.a1b2c3d4.tmp", folder / "plots/.errors.png.zz_9yx8w.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    p = run(folder, "evaluate")
    assert p.returncode == 0, p.stderr
    assert not any(path.exists() for path in stale)
    assert all((folder / n).read_bytes() != b"earlier run" for n in OUTPUTS)
