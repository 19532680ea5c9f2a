"""End-to-end tests of the DVC pipeline: repro, selective reruns, experiments, metrics diff, fetch sources.

Each test works in a throwaway git repository holding a copy of the project with reduced params
(600 training and 300 test digits, 2 epochs; see conftest.py). One repository is reproduced once
per module and copied for the tests that change it. Real MNIST comes from the local mirror.
"""

import json
import re
import socket
import time
from types import SimpleNamespace

import pytest
import yaml

from conftest import MNIST_DIR, MNIST_NAMES, ROOT, VENV_BIN, DvcRepo, make_dvc_repo, needs_mnist

MAIN_LR_SCALE = yaml.safe_load((ROOT / "params.yaml").read_text())["lr_scale"]

pytestmark = [pytest.mark.slow]
STAGES = ["fetch", "preprocess", "train", "evaluate"]
OUTPUTS = ["models/lenet5.npz", "metrics/eval.json", "metrics/train.json", "metrics/train_log.csv",
           "metrics/confusion.csv", "plots/learning_curves.png", "plots/confusion.png", "plots/errors.png"]


def ran(output: str) -> list[str]:
    """The stages DVC ran, in order, from its output."""
    return re.findall(r"Running stage '(\w+)'", output)


# on PYTHONPATH as sitecustomize: each Python process lists the lenet5 modules it imported, on exit
TRACER = '''"""Writes the lenet5 modules this process imported to $LENET5_TRACE_IMPORTS/<script>.txt at exit."""
import atexit, os, sys

def _dump():
    name = os.path.basename(sys.argv[0] if sys.argv else "").removesuffix(".py") or "python"
    with open(os.path.join(os.environ["LENET5_TRACE_IMPORTS"], name + ".txt"), "w") as f:
        f.write(" ".join(sorted(m for m in sys.modules if m.split(".")[0] == "lenet5")))
    if "lenet5" in sys.modules:
        with open(os.path.join(os.environ["LENET5_TRACE_IMPORTS"], name + ".file"), "w") as f:
            f.write(sys.modules["lenet5"].__file__)

if os.environ.get("LENET5_TRACE_IMPORTS"):
    atexit.register(_dump)
'''


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A repository after ``dvc repro`` twice and ``dvc status -q``, then everything committed on main.

    The first run records which lenet5 modules each stage imported (``trace/<stage>.txt``).
    """
    root = tmp_path_factory.mktemp("dvc-base")
    repo = make_dvc_repo(root / "repo", root / "home")
    trace = root / "trace"
    trace.mkdir()
    (root / "tracer").mkdir()
    (root / "tracer" / "sitecustomize.py").write_text(TRACER)
    env = dict(repo.env)
    # no repository on PYTHONPATH: each stage script must import the lenet5 beside it by itself
    repo.env.update(PYTHONPATH=str(root / "tracer"), LENET5_TRACE_IMPORTS=str(trace))
    repo.run("python", "-c", "import lenet5")  # what the package itself imports
    first = repo.dvc("repro")
    repo.env = env
    second = repo.dvc("repro")
    status = repo.dvc("status", "-q", check=False)
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "baseline run")
    return SimpleNamespace(repo=repo, first=first, second=second, status=status, trace=trace)


@pytest.fixture
def work(base, tmp_path):
    """A private copy of the reproduced repository, for a test that changes it."""
    return base.repo.copy(tmp_path / "repo", tmp_path / "home")


@pytest.fixture(scope="module")
def branched(base, tmp_path_factory):
    """A copy with branch ``other``: lr_scale 5, reproduced and committed (main keeps the committed lr_scale)."""
    root = tmp_path_factory.mktemp("dvc-branch")
    repo = base.repo.copy(root / "repo", root / "home")
    repo.git("checkout", "-q", "-b", "other")
    repo.set_params(lr_scale=5)
    out = repo.dvc("repro").out
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "lr_scale 5")
    return SimpleNamespace(repo=repo, out=out)


@needs_mnist
def test_repro_runs_every_stage_and_writes_the_outputs(base):
    out = base.first.out
    assert ran(out) == STAGES, out
    for rel in OUTPUTS:
        assert (base.repo.path / rel).is_file(), f"{rel} missing after dvc repro:\n{out}"
    assert sorted(p.name for p in (base.repo.path / "data/raw").iterdir()) == sorted(MNIST_NAMES)
    ev = base.repo.read_json("metrics/eval.json")
    for key in ("error_rate", "errors", "per_class_accuracy", "train_error_rate"):
        assert key in ev, f"eval.json lacks {key}: {sorted(ev)}"
    assert 0 <= ev["error_rate"] <= 1 and "accuracy" not in ev  # 1 - error_rate: not written twice
    assert list(ev)[:2] == ["error_rate", "errors"]
    assert ev["errors"] == round(ev["error_rate"] * 300)
    assert sorted(ev["per_class_accuracy"]) == [str(d) for d in range(10)]
    assert base.repo.read_json("metrics/train.json")["epochs"] == 2
    log = (base.repo.path / "metrics/train_log.csv").read_text().splitlines()
    assert len(log) == 1 + 2 and "epoch" in log[0]
    lock = (base.repo.path / "dvc.lock").read_text()
    assert all(f"  {s}:" in lock for s in STAGES)


@needs_mnist
@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_lists_the_lenet5_code_it_imports(base, stage):
    """dvc.yaml must cover every module a stage runs (as a file or by its folder), or editing it
    would not rerun the stage; and ``import lenet5`` alone imports nothing else."""
    assert set((base.trace / "-c.txt").read_text().split()) == {"lenet5"}
    imported = set((base.trace / f"{stage}.txt").read_text().split())
    deps = yaml.safe_load((base.repo.path / "dvc.yaml").read_text())["stages"][stage]["deps"]
    assert f"stages/{stage}.py" in deps and "lenet5.pipeline.commands" in imported, (deps, imported)
    assert len([d for d in deps if d.startswith(("stages/", "lenet5"))]) <= 10, deps

    def covered(module):
        path = module.replace(".", "/")
        path += "/__init__.py" if (base.repo.path / path).is_dir() else ".py"
        parts = path.split("/")
        return any("/".join(parts[:i]) in deps for i in range(1, len(parts) + 1))

    assert (base.trace / f"{stage}.file").read_text() == str(base.repo.path / "lenet5" / "__init__.py")
    missing = sorted(m for m in imported if not covered(m))
    assert not missing, f"stage {stage} imports {missing} but dvc.yaml does not list them as deps"


@needs_mnist
def test_second_repro_runs_nothing_and_status_is_clean(base):
    out = base.second.out
    assert ran(out) == [], out
    for stage in STAGES:
        assert f"Stage '{stage}' didn't change" in out, out
    assert "up to date" in out
    assert base.status.returncode == 0, base.status.out


@needs_mnist
def test_changing_gallery_reruns_only_evaluate(work):
    before = (work.path / "models/lenet5.npz").read_bytes()
    work.set_params(**{"evaluate.gallery": 3})
    assert work.dvc("status", "-q", check=False).returncode == 1
    out = work.dvc("repro").out
    assert ran(out) == ["evaluate"], out
    assert (work.path / "models/lenet5.npz").read_bytes() == before
    assert "gallery: 3" in (work.path / "dvc.lock").read_text()
    assert work.dvc("status", "-q", check=False).returncode == 0


@needs_mnist
def test_changing_lr_scale_reruns_train_and_evaluate(branched):
    assert ran(branched.out) == ["train", "evaluate"], branched.out
    rows = (branched.repo.path / "metrics/train_log.csv").read_text().splitlines()
    assert len(rows) == 3, rows  # trained both epochs afresh, not "resumed" from the old checkpoint
    lr = rows[0].split(",").index("lr")
    start = yaml.safe_load((branched.repo.path / "params.yaml").read_text())["train"]["start_factor"]
    assert float(rows[1].split(",")[lr]) == pytest.approx(5 * 0.0005 * start)  # paper's eta x lr_scale 5 x start


@needs_mnist
def test_metrics_diff_between_branches(branched):
    repo = branched.repo
    main_err = _committed_error(repo, "main")
    other_err = _committed_error(repo, "other")
    out = repo.dvc("metrics", "diff", "main", "other", "--all").out
    # DVC orders the files by a Python set (it changes with PYTHONHASHSEED), each file's keys alphabetically:
    # the test error is eval.json's first row, and no timing metric sits in either file
    rows = [ln for ln in out.splitlines() if "eval.json" in ln]
    assert rows and re.search(r"\berror_rate\b", rows[0]), out
    assert not re.search(r"seconds|_time\b|timing", out), out
    line = next(ln for ln in rows if re.search(r"\berror_rate\b", ln))
    numbers = [float(x) for x in re.findall(r"-?\d+\.\d+|-?\d+", line.split("error_rate", 1)[1])]
    assert numbers[:2] == [pytest.approx(main_err, abs=1e-4), pytest.approx(other_err, abs=1e-4)], line
    params = repo.dvc("params", "diff", "main", "other").out
    m = re.search(r"params\.yaml\s+lr_scale\s+(\S+)\s+5\s*$", params, re.M)
    assert m and float(m.group(1)) == MAIN_LR_SCALE, params


def _committed_error(repo, rev):
    return json.loads(repo.git("show", f"{rev}:metrics/eval.json").stdout)["error_rate"]


@needs_mnist
def test_exp_run_with_set_param_is_listed_by_exp_show(work):
    out = work.dvc("exp", "run", "-S", "lr_scale=5").out
    assert ran(out) == ["train", "evaluate"], out
    shown = json.loads(work.dvc("exp", "show", "--no-pager", "--json").stdout)
    runs = [r for r in _exp_rows(shown) if r["name"] not in (None, "main") and r["rev"] != "workspace"]
    assert runs, f"no experiment in dvc exp show: {shown}"
    data = runs[0]["data"]
    assert data["params"]["params.yaml"]["data"]["lr_scale"] == 5
    err = data["metrics"]["metrics/eval.json"]["data"]["error_rate"]
    assert isinstance(err, float) and 0 <= err <= 1
    table = work.run("env", "COLUMNS=120", str(VENV_BIN / "dvc"), "exp", "show", "--no-pager").stdout
    header = next(ln for ln in table.splitlines() if "Experiment" in ln)
    assert re.search(r"Experiment\s+(Cre\S*\s+)?error_rate\b", header), table  # the test error first
    main = next(r for r in _exp_rows(shown) if r["name"] == "main")
    assert main["data"]["params"]["params.yaml"]["data"]["lr_scale"] == MAIN_LR_SCALE
    # the README's way back to the committed results: nothing left to rerun, checkpoint included
    committed = work.git("show", "HEAD:metrics/eval.json").stdout
    assert (work.path / "metrics/eval.json").read_text() != committed
    work.git("checkout", "HEAD", "--", ".")
    work.dvc("checkout", "-f")
    assert work.git("status", "--porcelain").stdout == ""
    status = work.dvc("status", check=False)
    assert status.returncode == 0 and "up to date" in status.out, status.out
    assert ran(work.dvc("repro").out) == []


def _exp_rows(node):
    """Every row (a dict with ``rev``, ``name`` and ``data``) in ``dvc exp show --json`` output."""
    if isinstance(node, list):
        for item in node:
            yield from _exp_rows(item)
    elif isinstance(node, dict):
        if {"rev", "name", "data"} <= node.keys() and node["data"]:
            yield node
        for key in ("experiments", "revs"):
            if node.get(key):
                yield from _exp_rows(node[key])


def test_project_config_turns_analytics_off():
    text = (ROOT / ".dvc" / "config").read_text()
    assert re.search(r"(?m)^\s*analytics\s*=\s*false\s*$", text), text


@needs_mnist
def test_fetch_uses_the_local_mirror_and_not_the_network(dvc_repo):
    del dvc_repo.env["DVC_NO_ANALYTICS"]  # the committed .dvc/config alone must turn analytics off
    assert dvc_repo.dvc("config", "core.analytics").stdout.strip() == "false"
    dvc_repo.set_params(**{"fetch.mirrors": ["https://mirror.invalid/mnist/"], "fetch.retries": 0})
    out = dvc_repo.dvc("repro", "fetch").out
    assert ran(out) == ["fetch"], out
    for name in MNIST_NAMES:
        assert re.search(rf"{name}: \d+ bytes from {re.escape(str(MNIST_DIR))}", out), out
        assert (dvc_repo.path / "data/raw" / name).is_file()
    assert "mirror.invalid" not in out, out


def test_fetch_with_no_reachable_source_fails_cleanly(dvc_repo, tmp_path):
    del dvc_repo.env["MNIST_MIRROR"]
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sources = [str(tmp_path / "no-such-folder"), f"https://127.0.0.1:{port}/mnist/"]
    dvc_repo.set_params(**{"fetch.mirrors": sources, "fetch.retries": 1, "fetch.timeout": 5})
    lock = dvc_repo.path / "dvc.lock"
    lock_before = lock.read_bytes() if lock.exists() else None
    p = dvc_repo.dvc("repro", "fetch", check=False)
    assert p.returncode != 0, p.out
    errors = [ln for ln in p.out.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, p.out
    assert all(src in errors[0] for src in sources), errors[0]
    assert "Traceback" not in p.out
    raw = dvc_repo.path / "data" / "raw"
    assert not raw.exists() or not any(raw.iterdir()), sorted(raw.iterdir())
    assert (lock.read_bytes() if lock.exists() else None) == lock_before  # a failed stage records nothing


def _wait_for_queue(repo, timeout=300):
    """Poll ``dvc queue status`` until nothing is queued or running; returns its last output."""
    deadline = time.monotonic() + timeout
    while True:
        out = repo.dvc("queue", "status").out
        if not re.search(r"\b(Queued|Running)\b", out):
            return out
        assert time.monotonic() < deadline, out
        time.sleep(2)


@needs_mnist
def test_a_queued_seed_sweep_appears_in_the_seed_aware_summary(work):
    work.dvc("exp", "run", "--queue", "-S", "train.seed=range(1,3)")
    work.dvc("queue", "start", "-j", "1")
    status = _wait_for_queue(work)
    assert status.count("Success") == 2, status
    p = work.run("lenet5", "experiments", "--markdown", "EXPERIMENTS.md")
    row = next(ln for ln in p.stdout.splitlines() if ln.startswith("| the committed params.yaml"))
    assert "| 1, 2 | 2 |" in row and "reference" in row, p.stdout
    text = (work.path / "EXPERIMENTS.md").read_text()
    assert text.count("lenet5 experiments: begin") == 1 and "| the committed params.yaml | 1 |" in text, text
    work.run("lenet5", "experiments", "--markdown", "EXPERIMENTS.md")  # rewritten in place, not appended
    assert (work.path / "EXPERIMENTS.md").read_text() == text


@needs_mnist
def test_experiments_travel_between_clones_through_git_and_dvc_remotes(work, tmp_path):
    """Clone A runs an experiment and pushes it (git refs to a bare repository, data to a folder
    remote); clone B pulls it, sees its metrics, applies it and gets the same model bytes."""
    origin, storage = tmp_path / "origin.git", tmp_path / "storage"
    work.git("init", "-q", "--bare", "-b", "main", str(origin))
    work.dvc("remote", "add", "-d", "storage", str(storage))
    work.git("add", ".dvc/config")
    work.git("commit", "-q", "-m", "a DVC remote")
    work.git("remote", "add", "origin", str(origin))
    work.git("push", "-q", "origin", "main")
    work.dvc("exp", "run", "-n", "seed3", "-S", "train.seed=3")
    model_a = (work.path / "models/lenet5.npz").read_bytes()
    errors_a = work.read_json("metrics/eval.json")["errors"]
    work.dvc("exp", "push", "origin", "seed3")

    clone = DvcRepo(tmp_path / "b", tmp_path / "home-b")
    clone.run("git", "clone", "-q", str(origin), str(clone.path), cwd=tmp_path)
    clone.dvc("exp", "pull", "origin", "seed3")
    runs = [r for r in _exp_rows(json.loads(clone.dvc("exp", "show", "--json").stdout)) if r["name"] == "seed3"]
    assert runs and runs[0]["data"]["metrics"]["metrics/eval.json"]["data"]["errors"] == errors_a
    clone.dvc("exp", "apply", "seed3")
    clone.dvc("pull")
    assert (clone.path / "models/lenet5.npz").read_bytes() == model_a


@needs_mnist
def test_switching_branches_and_back_restores_each_branchs_outputs(branched, tmp_path):
    repo = branched.repo.copy(tmp_path / "repo", tmp_path / "home")
    other_model = (repo.path / "models/lenet5.npz").read_bytes()
    for branch in ("main", "other", "main"):
        repo.git("checkout", "-q", branch)
        repo.dvc("checkout")
        assert repo.git("status", "--porcelain").stdout == "", branch
        status = repo.dvc("status", check=False)
        assert status.returncode == 0 and "up to date" in status.out, (branch, status.out)
        assert ((repo.path / "models/lenet5.npz").read_bytes() == other_model) == (branch == "other")
