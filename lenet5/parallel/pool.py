"""Data parallelism over worker processes: each computes one chunk of a batch in shared memory.

A batch is cut into contiguous chunks (``chunks.spans``, at most ``threads`` of them); the calling
process computes the first chunk itself and each worker process one other, and the per-chunk results
are combined in chunk order. The chunking depends only on the batch size and ``threads``, so a run is
deterministic for a given ``threads``. What a chunk costs is a ``Spec``'s business: the pool is given
the parameter shapes, one sample's shape, the number of outputs per sample, the number of extra
values that may come with each sample, and a function
``compute(op, x, labels, params, criterion, j, extra) -> (loss, per-parameter dict, y or None)``;
it never imports the network it runs.

Why processes and not threads: a training step is hundreds of NumPy calls on arrays of a few
hundred kB, and threads share one interpreter lock. Measured with 2 cores (``benchmarks/README.md``):
batch 256 trained at 12,200-14,700 images/s with two threads and 16,000-17,800 with two processes
(each cutting its chunk into cache-sized pieces, which slows threads down instead); batch 32 at
9,300-10,200 images/s on one thread and 13,800-15,300 as two chunks of 16 in two processes;
inference at 33,600-47,800 images/s with two threads and 41,700-49,200 with two processes.

Everything large travels through one block of memory shared with the workers (``shared.py``): the
weights, each worker's images, labels and any extra values of its samples (the distortions each
process applies to its own images, ``model.py``), and the results and outputs it sends back.
Commands and replies are short JSON messages over a pipe; nothing is pickled. Between messages a
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
import dataclasses
import json
import mmap
import multiprocessing
import os
import signal

import numpy as np

from ..errors import Lenet5Error
from .chunks import spans
from .shared import Layout, await_count, spin_for

_POOLS = {}


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity: one pool per Spec object
class Spec:
    """What the pool computes: ``compute(op, x, labels, params, criterion, j, extra)`` on samples of
    ``sample_shape`` with parameters of ``param_shapes``; ``outputs`` values per sample come back as y;
    ``extra`` values may come with each sample (``compute``'s ``extra``: None, or ``(n, extra)`` in
    the parameters' dtype).
    ``compute`` runs in forked processes, so it is any callable (it is never pickled)."""

    param_shapes: dict
    sample_shape: tuple
    outputs: int
    compute: object
    extra: int = 0


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
    theirs; if it raises, the workers' replies are collected first.
    """
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

    def part(a, b):
        return x[a:b], None if labels is None else labels[a:b], None if extra is None else extra[a:b]

    remote = [part(a, b) for a, b in pieces[1:]]
    try:
        pool.start(op, params, remote, criterion, j)
    except KeyboardInterrupt:  # some commands may be sent, others not: never reuse these workers
        _discard(pool)
        raise
    x0, labels0, extra0 = part(*pieces[0])
    try:
        first = spec.compute(op, x0, labels0, params, criterion, j, extra0)
        if while_waiting is not None:
            while_waiting()
    except BaseException:  # bad arguments, Ctrl-C: collect the workers' replies before leaving
        try:
            pool.drain()
        except KeyboardInterrupt:  # interrupted again: replies may be left unread
            _discard(pool)
        raise
    try:
        results = [first] + pool.finish(op, remote)
    except KeyboardInterrupt:  # replies may be left unread: never reuse these workers
        _discard(pool)
        raise
    return [((b - a) / n, r) for (a, b), r in zip(pieces, results)]


def _serve(conn, buf, layout, worker, compute, inherited, spin):
    """A worker's loop: read a command, compute its chunk, write the results, reply.

    ``inherited`` are the parent's ends of every pipe, which the fork copied into this process: they
    are closed first, so that when the parent dies its pipe really closes and this loop ends.
    """
    for c in inherited:
        c.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    params = layout.params(buf)  # the parent writes the current weights here before each command
    x, labels, extra, y, out = layout.slot(buf, worker)
    counters, received = layout.counters(buf, worker), 0
    while True:
        await_count(counters, 0, received, spin)  # a command is due soon after a reply: watch first
        try:
            cmd = json.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        received += 1
        if cmd["op"] == "stop":
            return
        try:
            n = cmd["n"]
            lab = labels[:n].astype(np.int64) if cmd["op"] == "grads" else None  # (stored as floats)
            ex = extra[:n] if cmd["extra"] else None
            loss, result, y_n = compute(cmd["op"], x[:n], lab, params, cmd["criterion"], cmd["j"], ex)
            if y_n is not None:
                y[:n] = y_n
            for k, v in result.items():
                out[k][...] = v
            reply = {"loss": float(loss)}
        except Exception as e:  # reported to the parent, which raises it
            reply = {"error": f"{type(e).__name__}: {e}"}
        conn.send_bytes(json.dumps(reply).encode())
        counters[1] += 1


class ProcessPool:
    """``workers`` forked processes sharing one buffer with this one (for one thread at a time)."""

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
            p = ctx.Process(target=_serve, args=(child, self.buf, self.layout, i, spec.compute, inherited, self.spin),
                            daemon=True, name=f"lenet5-worker-{i}")
            p.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(p)
        self.params = self.layout.params(self.buf)
        self.slots = [self.layout.slot(self.buf, i) for i in range(workers)]
        self.counters = [self.layout.counters(self.buf, i) for i in range(workers)]

    def start(self, op, params, chunks, criterion, j):
        """Copy ``params`` and chunk i (``(x, labels or None, extra or None)``) to worker i, and start
        ``op`` there."""
        for k, v in params.items():
            self.params[k][...] = v
        for (x, labels, extra), (xs, ls, es, _, _) in zip(chunks, self.slots):  # every copy before any command
            xs[:len(x)] = x
            if labels is not None:
                ls[:len(x)] = labels
            if extra is not None:
                es[:len(x)] = extra
        for conn, counters, (x, _, extra) in zip(self.conns, self.counters, chunks):
            cmd = {"op": op, "n": len(x), "criterion": criterion, "j": j, "extra": extra is not None}
            try:
                conn.send_bytes(json.dumps(cmd).encode())
            except OSError:
                self._died()
            counters[0] += 1

    def _died(self):
        _discard(self)
        raise Lenet5Error("a worker process died (out of memory?); train.threads: 1 runs without them")

    def finish(self, op, chunks):
        """Wait for the workers: ``[(loss, results, outputs or None)]``, one per chunk, in order.

        The arrays are views of the shared memory, valid until the next command: ``map_chunks``'s
        caller combines them at once (``chunks.combine`` makes new arrays), so nothing is copied twice.
        """
        replies = self.drain()
        for reply in replies:
            if reply is None:
                self._died()
            if "error" in reply:
                raise Lenet5Error(f"worker process failed: {reply['error']}")
        return [(reply["loss"],
                 {} if op == "infer" else dict(out),
                 None if op == "curvature" else y[:len(x)])
                for reply, (x, _, _), (_, _, _, y, out) in zip(replies, chunks, self.slots)]

    def drain(self):
        """Every worker's reply to the last command (None for a worker that died), in order."""
        replies = []
        for conn, counters in zip(self.conns, self.counters):
            await_count(counters, 1, counters[0] - 1, self.spin)  # this process's chunk is done: watch first
            try:
                replies.append(json.loads(conn.recv_bytes()))
            except (EOFError, OSError):
                replies.append(None)
        return replies

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
