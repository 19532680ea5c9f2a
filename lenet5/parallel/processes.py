"""The worker processes of one pool, seen from the calling process: fork them, share the weights,
start a command per chunk, have the next batch prepared, read every reply in order.

A pool is ``workers`` processes forked from this one with one shared ``mmap`` (``shared.Layout``)
and one pipe each; ``worker.py`` is their side. Commands and replies are short JSON messages; a
worker answers its commands in order, and this process keeps, per worker, the list of commands
whose replies it has not read (``owed``), checking each reply against the first of them. Where an
interruption could leave a command half sent or a reply half read, the workers are discarded (and
replaced on the next call) rather than drained. ``pool.map_chunks`` drives a pool through one call.
"""

import collections
import json
import mmap
import multiprocessing

import numpy as np

from ..errors import Lenet5Error
from .chunks import spans
from .shared import Layout, await_count, spin_for
from .worker import serve


def one_blas_thread():
    """Limit BLAS to one thread in this process (not undone: the process now shares batches out)."""
    from threadpoolctl import threadpool_limits  # imported here: importing this module starts nothing

    threadpool_limits(limits=1, user_api="blas")


class ProcessPool:
    """``workers`` forked processes sharing one buffer with this one (for one thread at a time).

    Each worker answers its commands in order (``worker.py``); ``owed`` lists, per worker, the
    commands whose replies this process has not read yet, and each reply is checked against the
    first of them. Where an interruption could leave a command half sent or a reply half read,
    the workers are discarded instead of drained.
    """

    def __init__(self, spec, workers, capacity, dtype, registry):
        one_blas_thread()  # this process computes a chunk too; the workers forked below inherit it
        self.layout = Layout(spec, workers, capacity, dtype)
        self.spin = spin_for(workers)
        self.buf = mmap.mmap(-1, self.layout.size)  # anonymous, shared: the children see every write
        ctx = multiprocessing.get_context("fork")
        self.conns, self.procs = [], []
        for i in range(workers):
            parent, child = ctx.Pipe()
            inherited = [parent, *self.conns, *(c for pool in registry.values() for c in pool.conns)]
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
        self.registry = registry  # the pools of this process, by key

    def share(self, params):
        """Copy the weights to the shared memory (only while no worker computes a chunk)."""
        for k, v in params.items():
            self.params[k][...] = v

    def start(self, op, x, labels, extra, pieces, criterion, j, area=None):
        """Copy, for worker i, the rows ``pieces[i]`` of labels (and of x and extra unless they are
        read from prepared ``area``), then start ``op`` on them (the weights: ``share``)."""
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
        ``(x, extra)`` prepared, if these are the objects last given to ``prepare``, else None.

        (This process could prepare a few of those rows itself while it waits here: any split gives
        the same bytes, but a quarter of the batch here made the batches 2-3 % slower, paired.)"""
        ahead, self.ahead = self.ahead, None
        used = ahead is not None and ahead[0] is given[0] and ahead[1] is given[1]
        replies = [self._read(i) for i in range(len(self.conns)) for _ in range(len(self.owed[i]))]
        if None in replies:
            self._died()
        if not used:
            return None  # an error in preparing a batch that is not used is not this call's
        for reply in replies:
            self._check(reply)
        return ahead[2]

    def finish(self, op, pieces):
        """Wait for the workers' replies to the current command: ``[(loss, results, outputs or
        None)]``, one per chunk, in order.

        The arrays are views of the shared memory, valid until the next compute command:
        ``map_chunks``'s caller combines them at once (``chunks.combine`` makes new arrays), so
        nothing is copied twice.
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
        """Worker i's next reply (None if it died); watches its reply counter first. A reply to
        another command than the one owed first means the two sides are out of step: the workers
        are discarded."""
        await_count(self.counters[i], 1, int(self.counters[i][0]) - len(self.owed[i]), self.spin)
        op = self.owed[i].popleft()
        try:
            reply = json.loads(self.conns[i].recv_bytes())
        except (EOFError, OSError):
            return None
        if reply.get("op") != op:
            self.discard()
            raise Lenet5Error(f"worker process replied to {reply.get('op')!r} when {op!r} was due; "
                              "its workers are replaced on the next call")
        return reply

    def _check(self, reply):
        if reply is None:
            self._died()
        if "error" in reply:
            raise Lenet5Error(f"worker process failed: {reply['error']}")

    def _died(self):
        self.discard()
        raise Lenet5Error("a worker process died (out of memory?); train.threads: 1 runs without them")

    def discard(self):
        """Close these workers and remove this pool from its registry, so that the next call starts
        fresh ones."""
        for key, p in list(self.registry.items()):
            if p is self:
                del self.registry[key]
        self.close()

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
