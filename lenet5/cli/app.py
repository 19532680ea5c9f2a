"""The ``lenet5`` command line: the pipeline's four step commands plus ``predict``, ``bench`` and
``experiments``.

The step commands and the error handling are those of ``pipeline/commands.py`` (the DVC stage
scripts run the same ones): bad input ends with one line ``error: ...`` on stderr and exit status 1
(2 for a mistake on the command line itself); ``lenet5 --debug COMMAND`` shows the traceback.
"""

from typing import Annotated

import typer

from ..pipeline import commands
from .bench import bench
from .experiments import experiments
from .predict import predict

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="LeNet-5 (LeCun et al. 1998) in NumPy: fetch, preprocess, train, evaluate, predict, bench.")


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show Python tracebacks on errors.")] = False):
    """LeNet-5 exactly as published, trained with SDLM on MNIST."""
    commands.DEBUG["on"] = debug


for _name, _fn in {**commands.STEPS, "predict": predict, "bench": bench, "experiments": experiments}.items():
    app.command(_name)(commands.guarded(_fn))


def main(argv=None):
    """Console entry point (``lenet5``, ``python -m lenet5``)."""
    commands.main(app, argv)
