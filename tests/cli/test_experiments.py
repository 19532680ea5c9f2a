"""Tests of lenet5.cli.experiments: DVC's experiment JSON read, runs grouped apart from the seed,
the seed-aware verdict, and the Markdown written between its markers."""

import math
import os

import pytest

from conftest import ROOT, invoke, one_error_line
from lenet5.cli import experiments
from lenet5.cli.experiments import BEGIN, END, runs_from_json, summarize, table, write_markdown
from lenet5.errors import Lenet5Error

BASE = {"lr_scale": 100.0, "train": {"seed": 0, "epochs": 20}, "distort": {"enabled": True}}


def exp(name, seed, error, state="success", **train):
    params = {**BASE, "train": {**BASE["train"], "seed": seed, **train}}
    return {"revs": [{"rev": f"{name}0000000", "name": name, "error": None, "experiments": None,
                      "data": {"params": {"params.yaml": {"data": params}},
                               "metrics": {"metrics/eval.json": {"data": {"error_rate": error,
                                                                           "errors": round(error * 1e4)}}}}}],
            "executor": {"state": state}, "name": name}


def dvc_json(*experiments):
    """What ``dvc exp show --json`` prints: the workspace, then the baseline commit with its experiments."""
    base = {"params": {"params.yaml": {"data": BASE}}, "metrics": {"metrics/eval.json": {"data": {"error_rate": 0.5}}}}
    return [{"rev": "workspace", "name": None, "data": base, "error": None, "experiments": None},
            {"rev": "abc", "name": "main", "data": base, "error": None, "experiments": list(experiments)}]


def test_only_finished_experiments_are_read():
    records = dvc_json(exp("a", 0, 0.0067), exp("b", 1, 0.0067, state="running"), exp("c", 2, 0.007, state="queued"),
                       exp("d", 3, 0.008, state="failed"), exp("e", 4, 0.0071))
    runs = runs_from_json(records)
    assert [r["name"] for r in runs] == ["a", "e"]  # no baseline, no running, queued or failed run
    assert runs[0]["params"]["train.seed"] == 0 and runs[0]["error_rate"] == 0.0067 and runs[0]["errors"] == 67
    assert runs[0]["commit"] == "abc"  # the baseline commit the experiment ran on
    assert runs_from_json({"not": "a list"}) == [] and runs_from_json([]) == []


def test_groups_apart_from_the_seed_with_their_statistics():
    errors = [0.0067, 0.0068, 0.0080, 0.0071]
    records = dvc_json(*[exp(f"d{s}", s, e) for s, e in enumerate(errors)],
                       *[exp(f"m{s}", s, e, epochs=5) for s, e in enumerate([0.0068, 0.0072])])
    groups = summarize(runs_from_json(records), reference={"lr_scale": 100.0, "train.seed": 0, "train.epochs": 20,
                                                           "distort.enabled": True})
    ref, other = groups
    assert ref["setting"] == "the committed params.yaml" and ref["vs"] == "reference"
    assert ref["seeds"] == [0, 1, 2, 3] and ref["n"] == 4
    mean = sum(errors) / 4
    assert ref["mean"] == pytest.approx(mean) and ref["min"] == 0.0067 and ref["max"] == 0.0080
    assert ref["sd"] == pytest.approx(math.sqrt(sum((e - mean) ** 2 for e in errors) / 3))
    assert other["setting"] == "train.epochs=5" and other["n"] == 2 and other["vs"] == "within seed spread"
    assert "| train.epochs=5 | 0, 1 | 2 | 0.70 % |" in table(groups)


def test_a_difference_beyond_the_seed_spread_is_called_one():
    records = dvc_json(*[exp(f"d{s}", s, 0.0070 + 0.0001 * s) for s in range(3)],
                       *[exp(f"x{s}", s, 0.0095 + 0.0001 * s, mu=0.5) for s in range(3)],
                       exp("lone", 0, 0.02, momentum=0.9))
    groups = summarize(runs_from_json(records), reference={"lr_scale": 100.0, "train.seed": 5, "train.epochs": 20,
                                                           "distort.enabled": True})
    verdicts = {g["setting"]: g["vs"] for g in groups}
    assert verdicts == {"the committed params.yaml": "reference", "train.mu=0.5": "differs",
                        "train.momentum=0.9": "?"}


def test_markdown_is_written_between_the_markers_and_rewritten_in_place(tmp_path):
    path = tmp_path / "EXPERIMENTS.md"
    path.write_text("# Experiments\n\nintro\n\n## Historical runs\n\nold table\n")
    groups = summarize(runs_from_json(dvc_json(exp("a", 0, 0.0067), exp("b", 1, 0.0069))))
    write_markdown(path, groups, "lenet5 experiments --markdown EXPERIMENTS.md")
    first = path.read_text()
    assert first.startswith("# Experiments\n\nintro\n") and "old table" in first
    assert first.count(BEGIN) == 1 and first.count(END) == 1 and "| a |" in first and "| b |" in first
    write_markdown(path, groups, "lenet5 experiments --markdown EXPERIMENTS.md")
    assert path.read_text() == first


FAKE_DVC = "#!/bin/sh\n{body}\n"


@pytest.mark.parametrize("body, words", [
    ("echo 'ERROR: not a DVC repository' >&2; exit 253", "failed: ERROR: not a DVC repository"),
    ("echo '{[not json'", "printed no readable JSON"),
    ("echo '[]'", "no finished experiment"),
])
def test_what_dvc_prints_is_checked_with_one_error_line(tmp_path, monkeypatch, body, words):
    fake = tmp_path / "bin" / "dvc"
    fake.parent.mkdir()
    fake.write_text(FAKE_DVC.format(body=body))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    line = one_error_line(invoke("experiments", "--params", ROOT / "params.yaml"), words)
    assert line.startswith("error: experiments: ")


def test_dvc_output_is_read_within_a_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(experiments, "MAX_JSON", 1000)
    fake = tmp_path / "bin" / "dvc"
    fake.parent.mkdir()
    fake.write_text(FAKE_DVC.format(body="yes '[1,' | head -c 5000000"))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    one_error_line(invoke("experiments", "--params", ROOT / "params.yaml"), "printed more than")


def test_a_markdown_target_that_is_not_a_small_text_file_is_refused(tmp_path):
    groups = summarize(runs_from_json(dvc_json(exp("a", 0, 0.0067))))
    for path, words in ((tmp_path, "expected a Markdown file"), (tmp_path / "big.md", "expected a Markdown file"),
                        (tmp_path / "bin.md", "not UTF-8")):
        if path.name == "big.md":
            path.write_bytes(b"x" * (experiments.MAX_MARKDOWN + 1))
        elif path.name == "bin.md":
            path.write_bytes(b"\xff\xfe")
        with pytest.raises(Lenet5Error, match=words):
            write_markdown(path, groups, "lenet5 experiments")
