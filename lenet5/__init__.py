"""lenet5: the LeNet-5 of LeCun, Bottou, Bengio and Haffner (Proc. IEEE, 1998) in NumPy.

>>> from lenet5 import LeNet5
>>> net = LeNet5(seed=0, dtype="float64")

The package is layered; imports point down this list: ``cli`` (the ``lenet5`` command) ->
``pipeline`` (params.yaml and the four steps) -> ``training``, ``evaluation`` -> ``model`` (the
``LeNet5`` facade) -> ``nn`` (the paper's math), ``parallel`` (worker processes), ``data`` (MNIST
files) -> ``store`` (files on disk) -> ``errors``. Importing the package starts nothing and
imports nothing heavy: ``LeNet5`` is loaded on first use.
"""

__all__ = ["LeNet5"]
__version__ = "1.0.0"


def __getattr__(name):
    if name == "LeNet5":
        from .model import LeNet5

        return LeNet5
    raise AttributeError(f"module 'lenet5' has no attribute {name!r}")
