"""lenet5: the LeNet-5 of LeCun, Bottou, Bengio and Haffner (Proc. IEEE, 1998) in NumPy.

>>> from lenet5 import LeNet5
>>> net = LeNet5(seed=0, dtype="float64")
"""

from .model import LeNet5

__all__ = ["LeNet5"]
__version__ = "1.0.0"
