"""dvc.yaml is the one place that declares the pipeline's paths: every stage's ``cmd`` passes them to
its script, and the command's defaults (what ``lenet5 <step>`` uses) mirror them."""

import inspect
import shlex

import yaml

from conftest import ROOT
from lenet5.pipeline.commands import STEPS


def test_every_stage_passes_its_paths_and_the_defaults_mirror_them():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    assert list(stages) == list(STEPS)
    for name, stage in stages.items():
        argv = shlex.split(stage["cmd"])
        assert argv[:2] == ["python", f"stages/{name}.py"], stage["cmd"]
        options = dict(zip(argv[2::2], argv[3::2]))
        params = inspect.signature(STEPS[name]).parameters
        path_params = {p for p, v in params.items() if p not in ("params", "progress")}
        assert {o.removeprefix("--") for o in options} == path_params, (name, options)
        for option, value in options.items():
            assert str(params[option.removeprefix("--")].default) == value, (name, option)
        outs = [next(iter(o)) if isinstance(o, dict) else o
                for key in ("outs", "plots") for o in stage.get(key, [])]
        deps = stage["deps"]
        for value in options.values():  # each path is a dep or an out (the timing log is neither)
            assert value in deps or value in outs or any(value.startswith(o + "/") for o in outs) \
                or value.startswith("logs/"), (name, value)
