"""The four steps as commands, and the one error handler of the command line and the stage scripts.

``lenet5 fetch|preprocess|train|evaluate`` (``cli/``) and ``python stages/<step>.py`` (run by
``dvc repro`` with the paths of ``dvc.yaml``) run the same command functions below, with the same
options. Every command reads ``params.yaml`` (``--params``) and checks all of it before doing
anything. A known failure ends in one line ``error: ...`` on stderr and exit status 1; Ctrl-C in
``interrupted`` and 130; a mistake on the command line itself in one ``error:`` line and 2.
``lenet5 --debug`` or ``LENET5_DEBUG=1`` shows the traceback instead.
"""

import functools
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import Lenet5Error, describe, echo
from . import steps
from .config import load_params

D = steps.DEFAULTS
ParamsOpt = Annotated[Path, typer.Option("--params", help="The YAML parameter file.")]
DEBUG = {"on": False}  # set by ``lenet5 --debug``


def guarded(fn):
    """``fn`` whose known failures end in one line on stderr and exit status 1 (130 for Ctrl-C)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (Lenet5Error, OSError) as e:
            if DEBUG["on"] or os.environ.get("LENET5_DEBUG"):
                raise
            typer.echo(f"error: {describe(e)}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
    return wrapper


def fetch(params: ParamsOpt = Path("params.yaml"),
          out: Annotated[Path, typer.Option(help="Folder for the four IDX files.")] = D["raw"],
          progress: Annotated[bool, typer.Option(help="Show download progress.")] = True):
    """Download MNIST (or copy it from $MNIST_MIRROR) and verify every file's SHA-256."""
    paths = steps.fetch(load_params(params), out, progress)
    echo(f"{len(paths)} files verified in {out}")


def preprocess(params: ParamsOpt = Path("params.yaml"),
               raw: Annotated[Path, typer.Option(help="Folder holding the IDX files.")] = D["raw"],
               out: Annotated[Path, typer.Option(help="Folder for the .npy arrays.")] = D["prepared"]):
    """Check the IDX files, pad 28x28 -> 32x32, normalize to [-0.1, 1.175], write .npy arrays."""
    counts = steps.preprocess(load_params(params), raw, out)
    echo(f"wrote {out}: {counts}")


def train(params: ParamsOpt = Path("params.yaml"),
          data: Annotated[Path, typer.Option(help="Folder of prepared .npy arrays.")] = D["prepared"],
          checkpoint: Annotated[Path, typer.Option(help="Checkpoint written after every epoch.")] = D["checkpoint"],
          model: Annotated[Path, typer.Option(help="Final weights (.npz).")] = D["model"],
          metrics: Annotated[Path, typer.Option(help="Training metrics (JSON).")] = D["train_metrics"],
          log: Annotated[Path, typer.Option(help="Per-epoch log (CSV).")] = D["train_log"],
          timing: Annotated[Path, typer.Option(help="Timings, memory and machine of this run (JSON).")] = D["train_timing"],
          progress: Annotated[bool, typer.Option(help="Show a progress bar per epoch.")] = True):
    """Train with SDLM; resumes from the checkpoint when it was made with the same params and data."""
    echo(steps.summary(steps.train(load_params(params), data, checkpoint, model, metrics, log, timing, progress)))


def evaluate(params: ParamsOpt = Path("params.yaml"),
             data: Annotated[Path, typer.Option(help="Folder of prepared .npy arrays.")] = D["prepared"],
             model: Annotated[Path, typer.Option(help="Trained weights (.npz).")] = D["model"],
             log: Annotated[Path, typer.Option(help="Per-epoch training log (CSV) to plot.")] = D["train_log"],
             metrics: Annotated[Path, typer.Option(help="Test metrics (JSON).")] = D["eval_metrics"],
             confusion: Annotated[Path, typer.Option(help="Confusion data (CSV).")] = D["confusion"],
             plots: Annotated[Path, typer.Option(help="Folder for the PNG plots.")] = D["plots"]):
    """Test accuracy, per-class accuracy, final training error, confusion data and PNG plots."""
    echo(steps.summary(steps.evaluate(load_params(params), data, model, log, metrics, confusion, plots)))


STEPS = {"fetch": fetch, "preprocess": preprocess, "train": train, "evaluate": evaluate}

# click's UsageError (typer may vendor click): the parent of every command-line mistake
_USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def main(app, argv=None, prog_name="lenet5"):
    """Run the typer ``app`` on ``argv`` (default: the process's arguments) and exit.

    A command-line mistake (unknown command or option, missing or bad value) ends like any other bad
    input: one line ``error: ...`` on stderr, with click's exit status for usage errors, 2.
    """
    try:
        code = app(args=sys.argv[1:] if argv is None else list(argv), prog_name=prog_name, standalone_mode=False)
    except _USAGE_ERROR as e:
        command = e.ctx.command_path if e.ctx is not None else prog_name  # e.g. "lenet5 train"
        typer.echo(f"error: {e.format_message().rstrip('.')} (see `{command} --help`)", err=True)
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def run_stage(name, argv=None):
    """The entry point of ``stages/<name>.py``: step ``name`` with the paths ``dvc.yaml`` passes."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command(name)(guarded(STEPS[name]))
    main(app, argv, prog_name=f"stages/{name}.py")
