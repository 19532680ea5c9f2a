"""Tests of the ``lenet5`` command line: help, bench, error handling, and train + evaluate (predict:
``test_predict.py``).

Everything runs in-process through typer's CliRunner on tiny synthetic data (no MNIST, no DVC),
except one ``python -m lenet5 --help`` in a subprocess.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, invoke, one_error_line, params_text, set_params
from lenet5.cli import main
from lenet5.errors import Lenet5Error
from lenet5.model import LeNet5
from lenet5.store.prepared import write_prepared

COMMANDS = ("fetch", "preprocess", "train", "evaluate", "predict", "bench")


def test_help_lists_every_command():
    result = invoke("--help")
    assert result.exit_code == 0, result.output
    for cmd in COMMANDS:
        assert cmd in result.output


def test_python_dash_m_runs_the_cli():
    p = subprocess.run([sys.executable, "-m", "lenet5", "--help"], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert all(cmd in p.stdout for cmd in COMMANDS)


def test_bench_prints_one_json_line():
    result = invoke("bench", "--images", 512, "--batch-size", 64, "--infer-batch", 100, "--threads", 1)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    r = json.loads(lines[0])
    assert r["train_images_per_s"] > 0 and r["infer_images_per_s"] > 0
    assert r["dtype"] == "float32" and r["batch_size"] == 64 and r["images"] == 512
    assert r["threads"] == 1 and r["infer_batch_size"] == 100
    assert r["peak_rss_mb"] > 10


def test_bench_pipeline_times_fit_at_the_params_file_settings(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(params_text({"train.batch_size": 48, "train.threads": 1}), encoding="utf-8")
    result = invoke("bench", "--images", 480, "--batch-size", 64, "--threads", 1, "--pipeline", "--params", params)
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout.strip())
    assert r["pipeline_batch_size"] == 48 and r["pipeline_threads"] == 1 and r["pipeline_distort"] is True
    assert r["pipeline_test_images"] == 10000
    # one epoch of fit (480 images, curvature, distortions, 10,000 test images) takes longer than a bare one
    assert r["pipeline_epoch_seconds"] > r["epoch_seconds"] > 0
    assert r["pipeline_images_per_s"] == pytest.approx(480 / r["pipeline_epoch_seconds"], rel=1e-2)


def test_bench_pipeline_refuses_a_bad_params_file(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(params_text({"train.batch_size": 0}), encoding="utf-8")
    one_error_line(invoke("bench", "--images", 64, "--pipeline", "--params", params), "batch_size")


def test_bench_refuses_an_unknown_dtype():
    one_error_line(invoke("bench", "--dtype", "float16"), "float16", "float32")


def test_missing_params_file_is_one_error_line(tmp_path):
    one_error_line(invoke("train", "--params", tmp_path / "missing.yaml"), "missing.yaml")


def test_debug_lets_the_exception_propagate(tmp_path):
    result = invoke("--debug", "train", "--params", tmp_path / "missing.yaml")
    assert result.exit_code != 0
    assert isinstance(result.exception, Lenet5Error), result.exception
    assert "missing.yaml" in str(result.exception)
    # the flag does not stick to later invocations
    one_error_line(invoke("train", "--params", tmp_path / "missing.yaml"), "missing.yaml")


@pytest.mark.parametrize("argv, fragments", [
    (["bogus"], ["No such command 'bogus'", "`lenet5 --help`"]),
    (["predict", "--debug", "x.png"], ["No such option: --debug", "`lenet5 predict --help`"]),
    (["bench", "--repeat", "0"], ["--repeat", "`lenet5 bench --help`"]),
    (["bench", "--images", "1000000000000"], ["--images", "100000", "`lenet5 bench --help`"]),
])
def test_command_line_mistakes_are_one_error_line(argv, fragments, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1 and lines[0].startswith("error: "), err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def test_main_exits_with_the_command_status(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "predict" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["train", "--params", str(tmp_path / "missing.yaml")])
    assert e.value.code == 1
    assert capsys.readouterr().err.startswith("error: ")


@pytest.fixture
def prepared(tmp_path):
    """A folder of prepared arrays (64 train, 32 test, random) and a params.yaml of 1 epoch, batch 16."""
    rng = np.random.default_rng(1)
    data = tmp_path / "prepared"
    splits = {}
    for split, n in (("train", 64), ("test", 32)):
        x = rng.uniform(-0.1, 1.175, size=(n, 1, 32, 32)).astype(np.float32)  # (N, 1, 32, 32)
        splits[split] = (x, rng.integers(0, 10, size=n).astype(np.uint8))
    write_prepared(data, splits)
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    set_params(params, {"train.epochs": 1, "train.batch_size": 16, "train.hessian_samples": 32,
                        "evaluate.gallery": 4})
    return tmp_path, params, data


def test_train_then_evaluate_on_synthetic_data(prepared):
    tmp, params, data = prepared
    files = {k: tmp / v for k, v in dict(checkpoint="ck/last.npz", model="models/m.npz", metrics="m/train.json",
                                          log="m/log.csv", eval="m/eval.json", confusion="m/conf.csv",
                                          plots="plots", timing="logs/timing.json").items()}
    result = invoke("train", "--params", params, "--data", data, "--checkpoint", files["checkpoint"],
                    "--model", files["model"], "--metrics", files["metrics"], "--log", files["log"],
                    "--timing", files["timing"], "--no-progress")
    assert result.exit_code == 0, result.output
    assert json.loads(files["timing"].read_text())["peak_rss_mb"] > 0  # measurements apart from the metrics
    assert json.loads(files["metrics"].read_text())["epochs"] == 1
    assert len(files["log"].read_text().splitlines()) == 2
    LeNet5.load(files["model"])  # a valid checkpoint
    result = invoke("evaluate", "--params", params, "--data", data, "--model", files["model"], "--log",
                    files["log"], "--metrics", files["eval"], "--confusion", files["confusion"],
                    "--plots", files["plots"])
    assert result.exit_code == 0, result.output
    ev = json.loads(files["eval"].read_text())
    assert 0 <= ev["error_rate"] <= 1 and ev["n"] == 32
    assert ev["errors"] == round(32 * ev["error_rate"])
    keys = list(ev)
    assert keys[-3:] == ["reject_for_0.5%_error", "reject_for_0.1%_error", "reject_threshold"]  # appended last
    assert keys.index("train_error_rate") < keys.index("reject_for_0.5%_error")
    assert 0 <= ev["reject_for_0.5%_error"] <= ev["reject_for_0.1%_error"] <= 1 and ev["reject_threshold"] >= 0
    assert len(files["confusion"].read_text().splitlines()) == 1 + 32
    for name in ("confusion.png", "errors.png", "learning_curves.png", "rejection.png"):
        assert (files["plots"] / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_without_prepared_data_names_the_step(tmp_path, model):
    result = invoke("evaluate", "--params", ROOT / "params.yaml", "--data", tmp_path / "none",
                    "--model", model[0], "--metrics", tmp_path / "e.json", "--plots", tmp_path / "p")
    one_error_line(result, "none", "preprocess")
    assert not (tmp_path / "e.json").exists()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="OpenBLAS runs one thread on one CPU anyway")
def test_evaluate_runs_its_forward_passes_with_blas_on_one_thread(prepared, monkeypatch):
    """The products' bytes depend on how many threads OpenBLAS splits them over (on this project's
    machine, 1 thread gave reject_threshold 10.289482 and 2-4 threads 10.289467): evaluate fixes it
    at one, as training does, instead of taking the machine's CPU count."""
    from threadpoolctl import threadpool_info, threadpool_limits

    tmp, params, data = prepared
    LeNet5(seed=0).save(tmp / "m.npz")
    seen, forward = [], LeNet5.forward

    def recording(self, x, batch_size=None):
        seen.append(max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"))
        return forward(self, x, batch_size)

    monkeypatch.setattr(LeNet5, "forward", recording)
    with threadpool_limits(limits=2, user_api="blas"):  # what OpenBLAS takes by itself on 2 CPUs
        result = invoke("evaluate", "--params", params, "--data", data, "--model", tmp / "m.npz", "--log",
                        tmp / "none.csv", "--metrics", tmp / "eval.json", "--confusion", tmp / "c.csv",
                        "--plots", tmp / "plots")
    assert result.exit_code == 0, result.output
    assert seen and set(seen) == {1}, seen
