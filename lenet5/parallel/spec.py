"""What a pool computes: the ``Spec`` that ``pool.map_chunks`` is given, so that the parallel
engine never imports the network it runs (``model.py`` builds LeNet-5's).

The pool learns the parameter shapes, one sample's shape, the number of outputs per sample, the
number of extra values that may come with each sample, the function that computes a chunk, and
optionally a function that prepares samples ahead of the call that uses them.
"""

import dataclasses


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity: one pool per Spec object
class Spec:
    """``compute(op, x, labels, params, criterion, j, extra) -> (loss, per-parameter dict, y or None)``
    on samples of ``sample_shape`` with parameters of ``param_shapes``; ``outputs`` values per sample
    come back as y; ``extra`` values may come with each sample (``compute``'s ``extra``: None, or
    ``(n, extra)`` in the parameters' dtype).

    ``prepare(x, extra) -> x'`` (optional): the samples x ``(n, *sample_shape)`` with their extra
    values applied, each sample on its own, so that ``compute(op, prepare(x, e), ..., None)`` is
    ``compute(op, x, ..., e)`` for any rows x, e. The workers run it on the next batch while the
    calling process finishes the current one (``worker.py``).

    Both run in forked processes, so they are any callables (they are never pickled)."""

    param_shapes: dict
    sample_shape: tuple
    outputs: int
    compute: object
    extra: int = 0
    prepare: object = None
