"""The same bits on every x86-64 CPU with AVX2: one OpenBLAS kernel for all of them.

OpenBLAS, inside NumPy's wheel, picks its matrix-product kernels for the CPU when it is loaded
(Haswell on AVX2 machines, SkylakeX on AVX-512 ones, ...). The kernels sum in different orders, so
the same training run ends in different weights on different CPUs. ``pin_blas`` sets
``OPENBLAS_CORETYPE`` to ``KERNEL`` (Haswell: AVX2 + FMA, which every x86-64 CPU since 2013-2015
runs) before NumPy is loaded, overriding any outside choice; the command line and the stage scripts
call it first. Worker processes are forked from the pinned process and share its library. NumPy's
own SIMD dispatch (AVX-512 or AVX2 element-wise loops) was measured not to change this network's
results, so it is left alone (``tests/test_cpu.py`` checks both).

Where the pin cannot hold (another architecture, a CPU without AVX2/FMA, NumPy imported before
lenet5's entry points) the run still works and ``provenance()`` says why it may differ.
"""

import os
import platform
import sys

KERNEL = "Haswell"
NEEDS = {"avx2", "fma"}  # CPU flags the Haswell kernels use


def cpu_info():
    """``(model name, set of flags)`` of the first CPU in /proc/cpuinfo (empty where it is absent)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            text = f.read(1 << 20)  # the first CPU's block is a few kB
    except OSError:
        return model, flags
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            model = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
    return model, flags


def pin_blas():
    """Choose OpenBLAS's ``KERNEL`` for this process if NumPy is not loaded yet and the CPU runs it.

    Returns True when the kernel was pinned.
    """
    if "numpy" in sys.modules or platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    if not NEEDS <= cpu_info()[1]:
        return False
    os.environ["OPENBLAS_CORETYPE"] = KERNEL
    return True


def blas():
    """threadpoolctl's record of the BLAS library NumPy loaded (``architecture`` is the kernel,
    ``num_threads``, ``internal_api``, ``version``); empty if there is none."""
    from threadpoolctl import threadpool_info

    return next((i for i in threadpool_info() if i.get("user_api") == "blas"), {})


def provenance():
    """What produced a run's numbers: NumPy, its BLAS and kernel, whether the kernel is the pinned one.

    Only what is the same on every machine that can reproduce the committed run (the CPU model goes to
    ``machine()``), so that it can live in the committed metrics.
    """
    import numpy as np

    info = blas()
    kernel = info.get("architecture")
    pinned = kernel == KERNEL
    if pinned:
        note = "bitwise reproducible on any x86-64 CPU with AVX2 and FMA"
    elif platform.machine().lower() not in ("x86_64", "amd64"):
        note = f"not x86-64 ({platform.machine()}): results differ from the committed run in the last digits"
    elif not NEEDS <= cpu_info()[1]:
        note = "this CPU lacks AVX2/FMA: results differ from the committed run in the last digits"
    else:
        note = "NumPy was loaded before lenet5 could choose its kernel: results may differ in the last digits"
    return {"numpy": np.__version__, "blas": f"{info.get('internal_api')} {info.get('version')}",
            "blas_kernel": kernel, "reproducible": pinned, "note": note}


def machine():
    """The CPU model and the kernel OpenBLAS would pick by itself there (not reproducible: a log only)."""
    model, flags = cpu_info()
    return {"cpu": model, "cpus": len(os.sched_getaffinity(0)), "avx512": "avx512f" in flags,
            "python": platform.python_version()}
