"""The ``lenet5`` command: the pipeline steps, prediction on image files, and the benchmark.

Every command reads ``params.yaml`` (``--params``) and validates all of it before doing anything.
Bad input ends with one line ``error: ...`` on stderr and exit status 1 (2 for a mistake on the
command line itself); ``lenet5 --debug COMMAND`` shows the traceback instead. The DVC stages in
``stages/`` run these same commands with the default paths.
"""

import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import pipeline
from .config import load_params
from .errors import Lenet5Error, describe

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="LeNet-5 (LeCun et al. 1998) in NumPy: fetch, preprocess, train, evaluate, predict, bench.")

ParamsOpt = Annotated[Path, typer.Option("--params", help="The YAML parameter file.")]
L = pipeline.Layout()
_STATE = {"debug": False}


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show Python tracebacks on errors.")] = False):
    """LeNet-5 exactly as published, trained with SDLM on MNIST."""
    _STATE["debug"] = debug


def _command(fn):
    """Register ``fn`` as a command whose known failures end in one line on stderr and exit 1."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (Lenet5Error, OSError) as e:
            if _STATE["debug"]:
                raise
            typer.echo(f"error: {describe(e)}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
    return app.command()(wrapper)


@_command
def fetch(params: ParamsOpt = Path("params.yaml"),
          out: Annotated[Path, typer.Option(help="Folder for the four IDX files.")] = L.raw,
          progress: Annotated[bool, typer.Option(help="Show download progress.")] = True):
    """Download MNIST (or copy it from $MNIST_MIRROR) and verify every file's SHA-256."""
    paths = pipeline.run_fetch(load_params(params), out, progress)
    pipeline.echo(f"{len(paths)} files verified in {out}")


@_command
def preprocess(params: ParamsOpt = Path("params.yaml"),
               raw: Annotated[Path, typer.Option(help="Folder holding the IDX files.")] = L.raw,
               out: Annotated[Path, typer.Option(help="Folder for the .npy arrays.")] = L.prepared):
    """Check the IDX files, pad 28x28 -> 32x32, normalize to [-0.1, 1.175], write .npy arrays."""
    counts = pipeline.run_preprocess(load_params(params), raw, out)
    pipeline.echo(f"wrote {out}: {counts}")


@_command
def train(params: ParamsOpt = Path("params.yaml"),
          data: Annotated[Path, typer.Option(help="Folder of prepared .npy arrays.")] = L.prepared,
          checkpoint: Annotated[Path, typer.Option(help="Checkpoint written after every epoch.")] = L.checkpoint,
          model: Annotated[Path, typer.Option(help="Final weights (.npz).")] = L.model,
          metrics: Annotated[Path, typer.Option(help="Training metrics (JSON).")] = L.train_metrics,
          log: Annotated[Path, typer.Option(help="Per-epoch log (CSV).")] = L.train_log,
          progress: Annotated[bool, typer.Option(help="Show a progress bar per epoch.")] = True):
    """Train with SDLM; resumes from the checkpoint when it was made with the same params and data."""
    layout = pipeline.Layout(prepared=data, checkpoint=checkpoint, model=model, train_metrics=metrics,
                             train_log=log)
    pipeline.echo(pipeline.summary(pipeline.run_train(load_params(params), layout, progress)))


@_command
def evaluate(params: ParamsOpt = Path("params.yaml"),
             data: Annotated[Path, typer.Option(help="Folder of prepared .npy arrays.")] = L.prepared,
             model: Annotated[Path, typer.Option(help="Trained weights (.npz).")] = L.model,
             log: Annotated[Path, typer.Option(help="Per-epoch training log (CSV) to plot.")] = L.train_log,
             metrics: Annotated[Path, typer.Option(help="Test metrics (JSON).")] = L.eval_metrics,
             confusion: Annotated[Path, typer.Option(help="Confusion data (CSV).")] = L.confusion,
             plots: Annotated[Path, typer.Option(help="Folder for the PNG plots.")] = L.plots):
    """Test accuracy, per-class accuracy, final training error, confusion data and PNG plots."""
    layout = pipeline.Layout(prepared=data, model=model, train_log=log, eval_metrics=metrics,
                             confusion=confusion, plots=plots)
    pipeline.echo(pipeline.summary(pipeline.run_evaluate(load_params(params), layout)))


@_command
def predict(images: Annotated[Optional[list[Path]], typer.Argument(help="PNG/JPEG files, one digit each.")] = None,
            model: Annotated[Path, typer.Option(help="Trained weights (.npz).")] = L.model,
            idx: Annotated[Optional[Path], typer.Option(help="An IDX image file (e.g. data/raw/t10k-images-idx3-ubyte).")] = None,
            index: Annotated[int, typer.Option(help="Which image of --idx.", min=0)] = 0,
            as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False):
    """Recognize digits in image files (prepared as MNIST was) or in an IDX file; print the RBF distances."""
    from .model import LeNet5
    from .predict import inputs_from_files, inputs_from_idx

    if not images and idx is None:
        raise Lenet5Error("predict: give one or more image files, or --idx FILE --index N")
    net = LeNet5.load(model)
    named = inputs_from_idx(idx, index) if idx is not None else []
    named += inputs_from_files(images or [])
    for name, x in named:
        y = net.forward(x)[0]
        digit = int(y.argmin())
        if as_json:
            print(json.dumps({"input": name, "digit": digit, "distances": [round(float(v), 4) for v in y]}))
        else:
            dist = "  ".join(f"{d}:{v:.2f}" for d, v in enumerate(y))
            print(f"{name}: {digit}    RBF distances  {dist}")


@_command
def bench(batch_size: Annotated[int, typer.Option(help="Training mini-batch size.", min=1)] = 256,
          dtype: Annotated[str, typer.Option(help="float32 or float64.")] = "float32",
          images: Annotated[int, typer.Option(help="Images per epoch.", min=1)] = 60000,
          threads: Annotated[int, typer.Option(
              help="CPU cores sharing each batch: one process each, BLAS single-threaded (0 = one per CPU).",
              min=0)] = 0,
          repeat: Annotated[int, typer.Option(help="Epochs timed; the best is kept.", min=1)] = 1,
          infer_batch: Annotated[int, typer.Option(help="Images per inference call.", min=1)] = 1000):
    """Time one training epoch and one inference pass; print one JSON line of figures."""
    from .bench import main as bench_main

    if dtype not in ("float32", "float64"):
        raise Lenet5Error(f"bench: --dtype must be float32 or float64, got {dtype!r}")
    bench_main(batch_size=batch_size, dtype=dtype, images=images, threads=threads, repeat=repeat,
               infer_batch=infer_batch)


# click's UsageError (typer may vendor click): the parent of every command-line mistake
_USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def main(argv=None):
    """Console entry point (``lenet5``, ``python -m lenet5``).

    A command-line mistake (unknown command or option, missing or bad value) ends like any other bad
    input: one line ``error: ...`` on stderr, with click's exit status for usage errors, 2.
    """
    try:
        code = app(args=sys.argv[1:] if argv is None else list(argv), prog_name="lenet5", standalone_mode=False)
    except _USAGE_ERROR as e:
        command = e.ctx.command_path if e.ctx is not None else "lenet5"  # e.g. "lenet5 train"
        typer.echo(f"error: {e.format_message().rstrip('.')} (see `{command} --help`)", err=True)
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
