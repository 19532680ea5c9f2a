"""The application: ``params.yaml`` checked once (``config``), the four pipeline steps fetch,
preprocess, train and evaluate (``steps``), and the commands that run them with one error handler
for the command line and the DVC stage scripts (``commands``). Importing it first pins OpenBLAS's
kernel (``lenet5/cpu.py``), so that a run gives the same bits on every AVX2 machine."""

from ..cpu import pin_blas

pin_blas()  # before NumPy loads: the same OpenBLAS kernel on every AVX2 CPU (cpu.py)
