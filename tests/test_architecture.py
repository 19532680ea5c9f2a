"""The folder tree is the architecture: imports point one way, down the layers, and never in a cycle.

Every ``import`` in ``lenet5/`` (at the top of a module or inside a function) is read with ``ast`` and
resolved to a module of the package. A module may import from its own subpackage and from the
layers below its own; never from its own layer's other subpackages nor from above.
"""

import ast

import pytest

from conftest import ROOT

PACKAGE = ROOT / "lenet5"
# lowest first; a name is a subpackage or a top-level module of lenet5
LAYERS = [
    {"errors", "cpu"},
    {"store"},
    {"nn", "parallel", "data"},
    {"model"},
    {"training", "evaluation"},
    {"pipeline"},
    {"cli"},
    {"__init__", "__main__"},
]


def _module_name(path):
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path):
    """The lenet5 modules that ``path`` imports (absolute names)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "lenet5"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "lenet5":
                continue
            for a in node.names:  # "from . import layers" imports a module; "from .x import f" a name
                sub = f"{mod}.{a.name}"
                out.add(sub if (ROOT / sub.replace(".", "/")).is_dir()
                        or (ROOT / (sub.replace(".", "/") + ".py")).is_file() else mod)
    return out


GRAPH = {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _unit(module):
    """The layer unit of a module: its subpackage or top-level module name under lenet5."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(unit):
    return next(i for i, units in enumerate(LAYERS) if unit in units)


def test_every_module_belongs_to_a_layer():
    units = {_unit(m) for m in GRAPH}
    assert units <= set().union(*LAYERS), units - set().union(*LAYERS)
    assert {"nn", "parallel", "data", "store", "training", "evaluation", "pipeline", "cli"} <= units


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down_the_layers(module):
    mine = _unit(module)
    for target in sorted(GRAPH[module]):
        theirs = _unit(target)
        if theirs == mine:
            continue
        assert _layer(theirs) < _layer(mine), f"{module} imports {target}: {theirs} is not below {mine}"


def test_no_import_cycle():
    state = {}

    def visit(m, stack):
        state[m] = "open"
        for t in sorted(GRAPH.get(m, ())):
            if state.get(t) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t, stack + [t])
        state[m] = "done"

    for m in sorted(GRAPH):
        if m not in state:
            visit(m, [m])


def test_the_checker_sees_relative_and_function_level_imports():
    assert "lenet5.nn.layers" in GRAPH["lenet5.nn.network"]  # from . import layers as L
    assert "lenet5.training.loop" in GRAPH["lenet5.pipeline.steps"]  # inside a function
    assert "lenet5.model" in GRAPH["lenet5"]  # the lazy LeNet5 of the package
    assert "lenet5.model" not in GRAPH["lenet5.parallel.pool"]  # the pool is given its work


def test_importing_starts_nothing():
    """``import lenet5`` loads no other module; the model and its pool start no process and register
    no exit hook until a batch needs worker processes."""
    import subprocess
    import sys

    code = """
import atexit, multiprocessing, sys
import numpy, threadpoolctl
before = atexit._ncallbacks()
import lenet5
assert [m for m in sys.modules if m.startswith("lenet5")] == ["lenet5"], sorted(sys.modules)
from lenet5 import LeNet5
net = LeNet5(threads=2)
net.forward(numpy.zeros((8, 1, 32, 32)))  # too small to split: no worker
assert atexit._ncallbacks() == before and multiprocessing.active_children() == []
net.forward(numpy.zeros((64, 1, 32, 32)))  # split in two: one worker, and its exit hook
assert atexit._ncallbacks() > before and len(multiprocessing.active_children()) == 1
"""
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
