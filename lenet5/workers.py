"""Data parallelism over worker processes: gradients, curvatures and inference.

A batch is cut into contiguous chunks (``parallel.spans``, at least ``MIN_CHUNK`` images each, at
most ``threads`` of them); the calling process computes the first chunk itself and each worker
process one other, and the per-chunk results are combined in chunk order. The chunking depends only
on the batch size and ``threads``, so a run is deterministic for a given ``threads``.

Why processes and not threads: a training step is hundreds of NumPy calls on arrays of a few
hundred kB, and threads share one interpreter lock. Measured with 2 cores (``benchmarks/README.md``):
batch 256 trained at 12,200-14,700 images/s with two threads and 16,000-17,800 with two processes
(each cutting its chunk into cache-sized pieces, which slows threads down instead); batch 32 at
9,300-10,200 images/s on one thread and 13,800-15,300 as two chunks of 16 in two processes;
inference at 33,600-47,800 images/s with two threads and 41,700-49,200 with two processes.

Everything large travels through one block of memory shared with the workers (an anonymous ``mmap``
made before they are forked): the weights, each worker's images and labels, and the gradients,
curvatures and outputs it sends back. Commands and replies are short JSON messages over a pipe;
nothing is pickled. A worker ignores Ctrl-C (the parent handles it), exits when its pipe closes
(also when the parent is killed), and reports its own errors, which are raised here as
``Lenet5Error``; a worker that dies is reported and replaced on the next call.
"""

import atexit
import json
import mmap
import multiprocessing
import signal

import numpy as np

from .errors import Lenet5Error
from .parallel import spans

MIN_CHUNK = 16  # images; measured: two chunks of 16 in two processes beat one chunk of 32 by 40 %
_POOLS = {}


def map_chunks(net, op, x, labels=None, criterion="mse", j=0.1):
    """``[(fraction, net.chunk(op, chunk...)), ...]`` over the chunks of x, in order.

    ``fraction`` is the chunk's share of the batch, the weight of its mean. One chunk runs here;
    with more, chunks 2, 3, ... run in worker processes while this process computes the first.
    """
    n = len(x)
    x = np.asarray(x, dtype=net.dtype)
    if x.ndim != 4 or x.shape[1:] != (1, 32, 32):
        raise ValueError(f"input must have shape (N, 1, 32, 32), got {x.shape}")
    if labels is not None and labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match the images, got {labels.shape}")
    pieces = spans(net.threads, n, MIN_CHUNK)  # (start, stop) per chunk
    if len(pieces) == 1:
        return [(1.0, net.chunk(op, x, labels, criterion, j))]
    pool = _pool(len(pieces) - 1, max(b - a for a, b in pieces), net.dtype, type(net))
    remote = [(x[a:b], None if labels is None else labels[a:b]) for a, b in pieces[1:]]
    pool.start(op, net.params, remote, criterion, j)
    a, b = pieces[0]
    try:
        first = net.chunk(op, x[a:b], None if labels is None else labels[a:b], criterion, j)
    except BaseException:  # bad arguments, Ctrl-C: collect the workers' replies before leaving
        pool.drain()
        raise
    try:
        results = [first] + pool.finish(op, remote)
    except KeyboardInterrupt:  # replies may be left unread: never reuse these workers
        _discard(pool)
        raise
    return [((b - a) / n, r) for (a, b), r in zip(pieces, results)]


class _Layout:
    """Named views into one shared buffer: the weights, then per worker its inputs and outputs."""

    def __init__(self, shapes, workers, capacity, dtype):
        self.shapes, self.dtype, self.capacity = shapes, np.dtype(dtype), capacity
        self.n_params = sum(int(np.prod(s)) for s in shapes.values())
        self.per_worker = capacity * (1024 + 1 + 10) + self.n_params  # images, labels, outputs, results
        self.size = (self.n_params + workers * self.per_worker) * self.dtype.itemsize

    def params(self, buf):
        """The weights, a dict of arrays shaped like ``LeNet5.params``."""
        return self._split(self._flat(buf)[:self.n_params])

    def slot(self, buf, worker):
        """A worker's (images ``(capacity, 1, 32, 32)``, labels, outputs ``(capacity, 10)``, results)."""
        c = self.capacity
        w = self._flat(buf)[self.n_params + worker * self.per_worker:][:self.per_worker]
        x = w[:c * 1024].reshape(c, 1, 32, 32)  # (capacity*1024,) -> (capacity, 1, 32, 32)
        y = w[c * 1025:c * 1035].reshape(c, 10)  # (capacity*10,) -> (capacity, 10)
        return x, w[c * 1024:c * 1025], y, self._split(w[c * 1035:])

    def _flat(self, buf):
        return np.frombuffer(buf, dtype=self.dtype, count=self.size // self.dtype.itemsize)

    def _split(self, flat):
        out, i = {}, 0
        for k, s in self.shapes.items():
            n = int(np.prod(s))
            out[k] = flat[i:i + n].reshape(s)  # (n,) -> the parameter's shape
            i += n
        return out


def _serve(conn, buf, layout, worker, net_class, inherited):
    """A worker's loop: read a command, compute its chunk, write the results, reply.

    ``inherited`` are the parent's ends of every pipe, which the fork copied into this process: they
    are closed first, so that when the parent dies its pipe really closes and this loop ends.
    """
    for c in inherited:
        c.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    net = net_class(seed=0, dtype=layout.dtype.name, threads=1)
    net.params = layout.params(buf)  # the parent writes the current weights here before each command
    x, labels, y, out = layout.slot(buf, worker)
    while True:
        try:
            cmd = json.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        if cmd["op"] == "stop":
            return
        try:
            n = cmd["n"]
            lab = labels[:n].astype(np.int64) if cmd["op"] == "grads" else None  # (stored as floats)
            loss, result, y_n = net.chunk(cmd["op"], x[:n], lab, cmd["criterion"], cmd["j"])
            if y_n is not None:
                y[:n] = y_n
            for k, v in result.items():
                out[k][...] = v
            conn.send_bytes(json.dumps({"loss": float(loss)}).encode())
        except Exception as e:  # reported to the parent, which raises it
            conn.send_bytes(json.dumps({"error": f"{type(e).__name__}: {e}"}).encode())


class ProcessPool:
    """``workers`` forked processes sharing one buffer with this one (for one thread at a time)."""

    def __init__(self, workers, capacity, dtype, net_class):
        from .model import PARAM_SHAPES

        self.layout = _Layout(PARAM_SHAPES, workers, capacity, dtype)
        self.buf = mmap.mmap(-1, self.layout.size)  # anonymous, shared: the children see every write
        ctx = multiprocessing.get_context("fork")
        self.conns, self.procs = [], []
        for i in range(workers):
            parent, child = ctx.Pipe()
            inherited = [parent, *self.conns, *(c for pool in _POOLS.values() for c in pool.conns)]
            p = ctx.Process(target=_serve, args=(child, self.buf, self.layout, i, net_class, inherited),
                            daemon=True, name=f"lenet5-worker-{i}")
            p.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(p)
        self.params = self.layout.params(self.buf)
        self.slots = [self.layout.slot(self.buf, i) for i in range(workers)]

    def start(self, op, params, chunks, criterion, j):
        """Copy ``params`` and chunk i (``(x, labels or None)``) to worker i, and start ``op`` there."""
        for k, v in params.items():
            self.params[k][...] = v
        for (x, labels), (xs, ls, _, _) in zip(chunks, self.slots):  # every copy before any command
            xs[:len(x)] = x
            if labels is not None:
                ls[:len(x)] = labels
        for conn, (x, _) in zip(self.conns, chunks):
            try:
                conn.send_bytes(json.dumps({"op": op, "n": len(x), "criterion": criterion, "j": j}).encode())
            except OSError:
                self._died()

    def _died(self):
        _discard(self)
        raise Lenet5Error("a worker process died (out of memory?); train.threads: 1 runs without them")

    def finish(self, op, chunks):
        """Wait for the workers: ``[(loss, results, outputs or None)]``, one per chunk, in order.

        The arrays are copies: the shared memory is reused by the next command.
        """
        replies = self.drain()
        for reply in replies:
            if reply is None:
                self._died()
            if "error" in reply:
                raise Lenet5Error(f"worker process failed: {reply['error']}")
        return [(reply["loss"],
                 {} if op == "infer" else {k: v.copy() for k, v in out.items()},
                 None if op == "curvature" else y[:len(x)].copy())
                for reply, (x, _), (_, _, y, out) in zip(replies, chunks, self.slots)]

    def drain(self):
        """Every worker's reply to the last command (None for a worker that died), in order."""
        replies = []
        for conn in self.conns:
            try:
                replies.append(json.loads(conn.recv_bytes()))
            except (EOFError, OSError):
                replies.append(None)
        return replies

    def close(self):
        """Stop the workers (they also stop by themselves when this process ends)."""
        for conn in self.conns:
            try:
                conn.send_bytes(b'{"op": "stop"}')
            except OSError:
                pass
        for p in self.procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()


def _pool(workers, capacity, dtype, net_class):
    """The shared pool of ``workers`` processes for chunks of up to ``capacity`` images of ``dtype``."""
    key = (workers, np.dtype(dtype).name)
    pool = _POOLS.get(key)
    if pool is None or pool.layout.capacity < capacity:
        if pool is not None:
            pool.close()
        pool = _POOLS[key] = ProcessPool(workers, max(capacity, 256), dtype, net_class)
    return pool


def _discard(pool):
    """Close ``pool`` and forget it, so that the next call starts fresh workers."""
    for key, p in list(_POOLS.items()):
        if p is pool:
            del _POOLS[key]
    pool.close()


@atexit.register
def close_all():
    """Stop every worker process."""
    for pool in _POOLS.values():
        pool.close()
    _POOLS.clear()
