"""The header of a ``.npy`` array, checked against what holds it before any array is allocated.

``check_header`` reads the magic string and the header (NumPy caps it at 10,000 bytes), refuses
object dtypes (pickles), and checks that the header's shape and dtype account for exactly the bytes
the file or zip member stores: a 4 kB file that declares 10^11 images is refused at once.
"""

import math

import numpy as np

from ..errors import Lenet5Error


def check_header(fp, size, what):
    """(dtype, shape, order) of the ``.npy`` data at ``fp`` (``size`` bytes in all); ``fp`` is left at
    the first data byte. ``what`` names the file in the one-line error."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(fp)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, EOFError, OSError, SyntaxError, TypeError) as e:
        raise Lenet5Error(f"{what}: not a readable .npy array ({e})") from None
    if dtype.hasobject or dtype.itemsize == 0:
        raise Lenet5Error(f"{what}: holds {dtype} values; expected plain numbers (no pickled objects)")
    header = fp.tell()
    declared = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if header + declared != size:
        raise Lenet5Error(f"{what}: the header declares {dtype} {shape} ({declared} bytes) but "
                          f"{size - header} bytes follow it")
    return dtype, shape, "F" if fortran else "C"
