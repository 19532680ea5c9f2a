"""Entry point of the DVC stage scripts: one pipeline step with ``params.yaml`` and the default paths.

Kept apart from the CLI so that a stage depends only on the modules it runs (``dvc.yaml`` lists
them). Failures print one line ``error: ...`` and exit 1; set ``LENET5_DEBUG=1`` for the traceback.
"""

import os
import sys

from . import pipeline
from .config import load_params
from .errors import Lenet5Error, describe

STEPS = ("fetch", "preprocess", "train", "evaluate")


def run_stage(name, params_path="params.yaml"):
    """Run step ``name`` (one of ``STEPS``); exits the process with 1 on a known failure."""
    L = pipeline.Layout()
    try:
        params = load_params(params_path)
        if name == "fetch":
            pipeline.run_fetch(params, L.raw)
        elif name == "preprocess":
            pipeline.echo(f"wrote {L.prepared}: {pipeline.run_preprocess(params, L.raw, L.prepared)}")
        elif name == "train":
            pipeline.echo(pipeline.summary(pipeline.run_train(params, L)))
        elif name == "evaluate":
            pipeline.echo(pipeline.summary(pipeline.run_evaluate(params, L)))
        else:
            raise ValueError(f"unknown stage {name!r}, expected one of {STEPS}")
    except (Lenet5Error, OSError) as e:
        if os.environ.get("LENET5_DEBUG"):
            raise
        print(f"error: {describe(e)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
