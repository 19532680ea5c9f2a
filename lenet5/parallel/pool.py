"""Data parallelism over worker processes: each computes one chunk of a batch in shared memory.

A batch is cut into contiguous chunks (``chunks.spans``, at most ``threads`` of them); the calling
process computes the first chunk itself and each worker process one other, and the per-chunk results
are combined in chunk order. The chunking depends only on the batch size and ``threads``, so a run is
deterministic for a given ``threads``. What a chunk costs is a ``Spec``'s business (``spec.py``):
the pool never imports the network it runs.

Why processes and not threads: a training step is hundreds of NumPy calls on arrays of a few
hundred kB, and threads share one interpreter lock. Measured with 2 cores (``benchmarks/README.md``):
batch 256 trained at 12,200-14,700 images/s with two threads and 16,000-17,800 with two processes
(each cutting its chunk into cache-sized pieces, which slows threads down instead); batch 32 at
9,300-10,200 images/s on one thread and 13,800-15,300 as two chunks of 16 in two processes;
inference at 33,600-47,800 images/s with two threads and 41,700-49,200 with two processes.

Everything large travels through one block of memory shared with the workers (``shared.py``): the
weights, each worker's images, labels and any extra values of its samples (the distortions each
process applies to its own images, ``model.py``), and the results and outputs it sends back.
Commands and replies are short JSON messages over a pipe (``processes.py`` sends and reads them,
``worker.py`` answers); nothing is pickled. While this process finishes a batch, the workers may
prepare the next one (``Spec.prepare``: the distortions of the training images), so that this work
leaves the calling process's path. Between messages a process watches two counters in that memory
for a few milliseconds before it sleeps in its pipe read, since waking a sleeping process costs
more than a message (``shared.py``).
Each process already computes one chunk on one core, so creating a pool limits BLAS to one thread in
the calling process, and the workers forked from it inherit that limit (the pipeline's steps and
``lenet5 bench`` set the same limit around their work anyway): left at one thread per core, two
processes' BLAS threads fight for two cores, and inference ran 4-5x slower (9,000-12,500 images/s
against 50,000-63,000 on 2 cores, ``LeNet5(threads=2).forward`` in a script of its own).
A worker ignores Ctrl-C (the parent handles it), exits when its pipe closes (also when the parent is
killed), and reports its own errors, which are raised here as ``Lenet5Error``; a worker that dies is
reported and replaced on the next call. No process is started, and no exit hook registered, before
the first call that needs one.
"""

import atexit
import os

import numpy as np

from .chunks import spans
from .processes import ProcessPool

_POOLS = {}


def resolve_threads(threads):
    """A ``threads`` setting as a process count: 0 means one process per CPU this process may use."""
    return int(threads) or len(os.sched_getaffinity(0))


def map_chunks(spec, op, params, x, labels=None, criterion="mse", j=0.1, threads=1, extra=None,
               while_waiting=None):
    """``[(fraction, spec.compute(op, chunk...)), ...]`` over the chunks of x, in order; the workers'
    arrays are views of the shared memory, to be combined before the next call (``chunks.combine``).

    ``fraction`` is the chunk's share of the batch, the weight of its mean. One chunk runs here;
    with more, chunks 2, 3, ... run in worker processes while this process computes the first.
    x and ``extra`` (None, or ``(N, spec.extra)`` values that go with the samples) are converted to
    the dtype of ``params``; shapes are checked before any worker starts. ``while_waiting`` (a
    function of no arguments) is called once, after this process's chunk, while the workers finish
    theirs; if it raises, the workers' replies are collected first. It may return the next call's
    ``(x, extra)``: when the Spec has ``prepare`` and that call will run on these workers too, they
    prepare those samples (``spec.prepare(x, extra)``, ``worker.py``) while this process combines
    this call's results, and the next call given these same two objects, unchanged, starts from the
    prepared samples (``ProcessPool.prepare``, ``settle``); else it runs as usual.
    """
    given = (x, extra)  # the caller's objects: a batch prepared ahead is recognised by them
    dtype = next(iter(params.values())).dtype
    n = len(x)
    x = np.asarray(x, dtype=dtype)
    if x.ndim != 1 + len(spec.sample_shape) or x.shape[1:] != tuple(spec.sample_shape):
        raise ValueError(f"input must have shape (N, {', '.join(map(str, spec.sample_shape))}), got {x.shape}")
    if labels is not None and labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match the images, got {labels.shape}")
    if extra is not None:
        extra = np.asarray(extra, dtype=dtype)
        if extra.shape != (n, spec.extra):
            raise ValueError(f"extra must have shape ({n}, {spec.extra}) to match the images, got {extra.shape}")
    pieces = spans(threads, n)  # (start, stop) per chunk
    if len(pieces) == 1:
        result = spec.compute(op, x, labels, params, criterion, j, extra)
        if while_waiting is not None:
            while_waiting()
        return [(1.0, result)]
    pool = _pool(spec, len(pieces) - 1, max(b - a for a, b in pieces), dtype)
    try:
        pool.share(params)  # before waiting for the workers' resampling: only a failed call's chunk can be
        # computing now, and its results are dropped
        area = pool.settle(given)  # the replies to earlier prepare commands: did they prepare this batch?
        if area is not None:  # every chunk reads its samples from there, their extra values applied
            x, extra = pool.areas[area][0], None
        pool.start(op, x, labels, extra, pieces[1:], criterion, j, area)
    except KeyboardInterrupt:  # some commands may be sent, others not: never reuse these workers
        _discard(pool)
        raise
    (a0, b0) = pieces[0]
    try:
        first = spec.compute(op, x[a0:b0], None if labels is None else labels[a0:b0], params, criterion, j,
                             None if extra is None else extra[a0:b0])
        ahead = None if while_waiting is None else while_waiting()
    except BaseException:  # bad arguments, Ctrl-C: collect the workers' replies before leaving
        try:
            pool.drain()
        except KeyboardInterrupt:  # interrupted again: replies may be left unread
            _discard(pool)
        raise
    if ahead is not None and len(spans(threads, len(ahead[0]))) == len(pieces):  # the next call uses this pool
        try:
            pool.prepare(*ahead, busy=area)
        except KeyboardInterrupt:  # a command may be half sent: never reuse these workers
            _discard(pool)
            raise
    try:
        results = [first] + pool.finish(op, pieces[1:])
    except KeyboardInterrupt:  # replies may be left unread: never reuse these workers
        _discard(pool)
        raise
    return [((b - a) / n, r) for (a, b), r in zip(pieces, results)]


def _pool(spec, workers, capacity, dtype):
    """The shared pool of ``workers`` processes computing ``spec`` for chunks of up to ``capacity``
    samples of ``dtype``; the exit hook that stops every pool is registered with the first one."""
    if not _POOLS:
        atexit.unregister(close_all)
        atexit.register(close_all)
    key = (spec, workers, np.dtype(dtype).name)
    pool = _POOLS.get(key)
    if pool is None or pool.layout.capacity < capacity:
        if pool is not None:
            pool.close()
        pool = _POOLS[key] = ProcessPool(spec, workers, max(capacity, 256), dtype, _POOLS)
    return pool


def _discard(pool):
    """Close ``pool`` and forget it, so that the next call starts fresh workers."""
    pool.discard()


def close_all():
    """Stop every worker process."""
    for pool in _POOLS.values():
        pool.close()
    _POOLS.clear()
