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
Commands and replies are short JSON messages over a pipe (``worker.py``); nothing is pickled. While
this process finishes a batch, the workers may prepare the next one (``Spec.prepare``: the
distortions of the training images), so that work leaves the calling process's path. Between messages a
process watches two counters in that memory for a few milliseconds before it sleeps in its pipe
read, since waking a sleeping process costs more than a message (``shared.py``).
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
import collections
import json
import mmap
import multiprocessing
import os

import numpy as np

from ..errors import Lenet5Error
from .chunks import spans
from .shared import Layout, await_count, spin_for
from .worker import serve

_POOLS = {}


def one_blas_thread():
    """Limit BLAS to one thread in this process (not undone: the process now shares batches out)."""
    from threadpoolctl import threadpool_limits  # imported here: importing this module starts nothing

    threadpool_limits(limits=1, user_api="blas")


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
    ``(x, extra)``: when the Spec has ``prepare``, the workers then prepare all of those samples
    (``spec.prepare(x, extra)``, ``worker.py``) while this process combines this call's results, and
    the next call given these same two objects, unchanged, starts from the prepared samples.
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
        area = pool.settle(given)  # the replies to earlier prepare commands: did they prepare this batch?
        if area is not None:  # every chunk reads its samples from there, their extra values applied
            x, extra = pool.areas[area][0], None
        pool.start(op, params, x, labels, extra, pieces[1:], criterion, j, area)
    except KeyboardInterrupt:  # some commands may be sent, others not: never reuse these workers
        _discard(pool)
        raise
    (a0, b0) = pieces[0]
    try:
        first = spec.compute(op, x[a0:b0], None if labels is None else labels[a0:b0], params, criterion, j,
                             None if extra is None else extra[a0:b0])
        if while_waiting is not None:
            ahead = while_waiting()
            if ahead is not None:
                pool.prepare(*ahead, busy=area)
    except BaseException:  # bad arguments, Ctrl-C: collect the workers' replies before leaving
        try:
            pool.drain()
        except KeyboardInterrupt:  # interrupted again: replies may be left unread
            _discard(pool)
        raise
    try:
        results = [first] + pool.finish(op, pieces[1:])
    except KeyboardInterrupt:  # replies may be left unread: never reuse these workers
        _discard(pool)
        raise
    return [((b - a) / n, r) for (a, b), r in zip(pieces, results)]


class ProcessPool:
    """``workers`` forked processes sharing one buffer with this one (for one thread at a time).

    Each worker answers its commands in order (``worker.py``); ``owed`` lists, per worker, the
    commands whose replies this process has not read yet, so a reply is never taken for another's.
    """

    def __init__(self, spec, workers, capacity, dtype):
        one_blas_thread()  # this process computes a chunk too; the workers forked below inherit it
        self.layout = Layout(spec, workers, capacity, dtype)
        self.spin = spin_for(workers)
        self.buf = mmap.mmap(-1, self.layout.size)  # anonymous, shared: the children see every write
        ctx = multiprocessing.get_context("fork")
        self.conns, self.procs = [], []
        for i in range(workers):
            parent, child = ctx.Pipe()
            inherited = [parent, *self.conns, *(c for pool in _POOLS.values() for c in pool.conns)]
            p = ctx.Process(target=serve, args=(child, self.buf, self.layout, i, spec, inherited, self.spin),
                            daemon=True, name=f"lenet5-worker-{i}")
            p.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(p)
        self.params = self.layout.params(self.buf)
        self.slots = [self.layout.slot(self.buf, i) for i in range(workers)]
        self.areas = [self.layout.area(self.buf, k) for k in range(2)] if self.layout.ahead else []
        self.counters = [self.layout.counters(self.buf, i) for i in range(workers)]
        self.owed = [collections.deque() for _ in range(workers)]
        self.ahead = None  # (x, extra, area) of the batch the workers were last told to prepare

    def start(self, op, params, x, labels, extra, pieces, criterion, j, area=None):
        """Copy ``params`` and, for worker i, the rows ``pieces[i]`` of labels (and of x and extra
        unless they are read from prepared ``area``), then start ``op`` on them."""
        for k, v in params.items():
            self.params[k][...] = v
        for (a, b), (xs, ls, es, _, _) in zip(pieces, self.slots):  # every copy before any command
            if area is None:
                xs[:b - a] = x[a:b]
                if extra is not None:
                    es[:b - a] = extra[a:b]
            if labels is not None:
                ls[:b - a] = labels[a:b]
        for i, (a, b) in enumerate(pieces):
            self._send(i, {"op": op, "n": b - a, "criterion": criterion, "j": j, "extra": extra is not None,
                           "area": area, "offset": a})

    def prepare(self, x, extra, busy=None):
        """Copy the next batch's samples x and ``extra`` values to an area that ``busy`` (the area
        the current commands read, or None) is not, and have the workers prepare its rows in equal
        parts after their current command. A batch that the spec cannot prepare, or that does not
        fit, is left alone (the call that gets it runs as usual)."""
        x = np.asarray(x)
        if not self.areas or extra is None or not 0 < len(x) <= self.layout.ahead:
            return
        extra = np.asarray(extra)
        if x.shape[1:] != self.layout.sample_shape or extra.shape != (len(x), self.layout.extra):
            return
        k = 1 if busy == 0 else 0
        xs, es = self.areas[k]
        xs[:len(x)], es[:len(x)] = x, extra  # converted to the pool's dtype as map_chunks converts them
        for i, (a, b) in enumerate(spans(len(self.conns), len(x), 1)):
            self._send(i, {"op": "prepare", "area": k, "start": a, "stop": b})
        self.ahead = (x, extra, k)

    def settle(self, given):
        """Read every reply still owed (to prepare commands); return the area that holds ``given``
        ``(x, extra)`` prepared, if these are the objects last given to ``prepare``, else None."""
        ahead, self.ahead = self.ahead, None
        replies = [self._read(i) for i in range(len(self.conns)) for _ in range(len(self.owed[i]))]
        if None in replies:
            self._died()
        if ahead is None or ahead[0] is not given[0] or ahead[1] is not given[1]:
            return None  # an error in preparing a batch that is not used is not this call's
        for reply in replies:
            self._check(reply)
        return ahead[2]

    def finish(self, op, pieces):
        """Wait for the workers' replies to the current command: ``[(loss, results, outputs or
        None)]``, one per chunk, in order.

        The arrays are views of the shared memory, valid until the next command: ``map_chunks``'s
        caller combines them at once (``chunks.combine`` makes new arrays), so nothing is copied twice.
        """
        replies = [self._read(i) for i in range(len(pieces))]
        for reply in replies:
            self._check(reply)
        return [(reply["loss"],
                 {} if op == "infer" else dict(out),
                 None if op == "curvature" else y[:b - a])
                for reply, (a, b), (_, _, _, y, out) in zip(replies, pieces, self.slots)]

    def drain(self):
        """Read every reply still owed, discarding them (after an error here, or on Ctrl-C): a
        batch being prepared is then not used."""
        self.ahead = None
        for i in range(len(self.conns)):
            while self.owed[i]:
                self._read(i)

    def _send(self, i, cmd):
        try:
            self.conns[i].send_bytes(json.dumps(cmd).encode())
        except OSError:
            self._died()
        self.counters[i][0] += 1
        self.owed[i].append(cmd["op"])

    def _read(self, i):
        """Worker i's next reply (None if it died); watches its reply counter first."""
        await_count(self.counters[i], 1, int(self.counters[i][0]) - len(self.owed[i]), self.spin)
        self.owed[i].popleft()
        try:
            return json.loads(self.conns[i].recv_bytes())
        except (EOFError, OSError):
            return None

    def _check(self, reply):
        if reply is None:
            self._died()
        if "error" in reply:
            raise Lenet5Error(f"worker process failed: {reply['error']}")

    def _died(self):
        _discard(self)
        raise Lenet5Error("a worker process died (out of memory?); train.threads: 1 runs without them")

    def close(self):
        """Stop the workers (they also stop by themselves when this process ends)."""
        for conn, counters in zip(self.conns, self.counters):
            try:
                conn.send_bytes(b'{"op": "stop"}')
            except OSError:
                pass
            counters[0] += 1
        for p in self.procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()


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
        pool = _POOLS[key] = ProcessPool(spec, workers, max(capacity, 256), dtype)
    return pool


def _discard(pool):
    """Close ``pool`` and forget it, so that the next call starts fresh workers."""
    for key, p in list(_POOLS.items()):
        if p is pool:
            del _POOLS[key]
    pool.close()


def close_all():
    """Stop every worker process."""
    for pool in _POOLS.values():
        pool.close()
    _POOLS.clear()
