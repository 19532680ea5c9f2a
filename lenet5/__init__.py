"""lenet5: the LeNet-5 of LeCun, Bottou, Bengio and Haffner (Proc. IEEE, 1998) in NumPy.

>>> from lenet5 import LeNet5, read_digit
>>> net = LeNet5(seed=0, dtype="float64")

``LeNet5.load("models/lenet5.npz").predict(read_digit("7.png")[None])`` classifies an image file
(``read_digit``: any image Pillow reads -> the network's input ``(1, 32, 32)``, prepared as MNIST).

The package is layered; imports point down this list: ``cli`` (the ``lenet5`` command) ->
``pipeline`` (params.yaml and the four steps) -> ``training``, ``evaluation`` -> ``model`` (the
``LeNet5`` facade) -> ``nn`` (the paper's math), ``parallel`` (worker processes), ``data`` (MNIST
files) -> ``store`` (files on disk) -> ``errors``. Importing the package starts nothing and
imports nothing heavy: ``LeNet5`` and ``read_digit`` are loaded on first use.
"""

__all__ = ["LeNet5", "read_digit"]
__version__ = "1.0.0"


def __getattr__(name):
    if name == "LeNet5":
        from .model import LeNet5

        return LeNet5
    if name == "read_digit":
        from .data.image import load_digit

        return load_digit
    raise AttributeError(f"module 'lenet5' has no attribute {name!r}")
