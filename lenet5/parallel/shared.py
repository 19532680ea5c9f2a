"""The block of memory a pool shares with its worker processes, and when a process reads its pipe.

One anonymous ``mmap`` is made before the workers are forked, so every process sees every write.
It starts with ``CONTROL`` bytes per worker holding two counters (commands sent to that worker,
replies it has sent), then the weights, then per worker its images, labels, extra values, outputs
and results, then, when the pool's Spec prepares samples, two areas that each hold a whole batch
prepared ahead (``Layout``; ``worker.py``). The counters carry no data: every command and reply
still goes over the worker's pipe, and a counter is raised only after its message was sent. They
only tell a process that the message it waits for has been sent, so that it can watch them
instead of sleeping in its pipe read (``await_count``): waking a process that sleeps costs far
more on a virtual machine than the message itself. Measured on the project's 2-core VM, a command
and its reply took 210 us (median; 600 us at the 90th percentile) between processes that slept in
their pipe reads, 20 us (37 us) between processes that watched a counter; a batch of 32 sends one
or two commands per worker (``benchmarks/README.md``). A process watches for at most ``SPIN``
seconds, and not at all when the pool has more processes than this process may use CPUs
(``spin_for``), then it sleeps as before.
"""

import os
import time

import numpy as np

# Bytes of counters per worker at the start of the shared buffer (one cache line).
CONTROL = 64
# Seconds a process watches the counters before it sleeps in its pipe read.
SPIN = 0.005
# Most samples a batch prepared ahead may have (two areas of them: ~8 MB of 32x32 float32 images);
# a larger batch is prepared by each process for its own chunk, as without the areas.
AHEAD = 1024


def spin_for(workers):
    """``SPIN`` when the calling process and ``workers`` workers fit on the CPUs this process may
    use, else 0: a process that watches holds a CPU that another one may need."""
    return SPIN if workers + 1 <= len(os.sched_getaffinity(0)) else 0.0


def await_count(counters, k, seen, spin):
    """Return once ``counters[k] > seen``, or after ``spin`` seconds; the caller then reads its pipe,
    which holds the message already (or blocks until it comes)."""
    deadline = None
    while counters[k] <= seen:
        now = time.perf_counter()
        if deadline is None:
            deadline = now + spin
        elif now >= deadline:
            return


class Layout:
    """Named views into one shared buffer: the counters, the weights, per worker its inputs and
    outputs, then the areas for batches prepared ahead. ``spec`` gives ``param_shapes``,
    ``sample_shape``, ``outputs``, ``extra`` and ``prepare``."""

    def __init__(self, spec, workers, capacity, dtype):
        self.shapes, self.dtype, self.capacity, self.workers = spec.param_shapes, np.dtype(dtype), capacity, workers
        self.sample_shape, self.outputs, self.extra = tuple(spec.sample_shape), int(spec.outputs), int(spec.extra)
        self.sample = int(np.prod(self.sample_shape))
        self.n_params = sum(int(np.prod(s)) for s in self.shapes.values())
        # images, labels, extra values, y, results
        self.per_worker = capacity * (self.sample + 1 + self.extra + self.outputs) + self.n_params
        # samples of a whole batch per area (every chunk at capacity, at most AHEAD), when the spec
        # prepares them
        self.ahead = min(capacity * (workers + 1), AHEAD) if spec.prepare is not None else 0
        self.per_area = self.ahead * (self.sample + self.extra)
        self.data_size = (self.n_params + workers * self.per_worker + 2 * self.per_area) * self.dtype.itemsize
        self.size = CONTROL * workers + self.data_size  # the counters first, then the data

    def params(self, buf):
        """The weights, a dict of arrays shaped like ``spec.param_shapes``."""
        return self._split(self._flat(buf)[:self.n_params])

    def slot(self, buf, worker):
        """A worker's (images ``(capacity, *sample_shape)``, labels, extra ``(capacity, extra)``,
        outputs ``(capacity, outputs)``, results shaped like the parameters)."""
        c, s, e, o = self.capacity, self.sample, self.extra, self.outputs
        w = self._flat(buf)[self.n_params + worker * self.per_worker:][:self.per_worker]
        x = w[:c * s].reshape(c, *self.sample_shape)  # (capacity*sample,) -> (capacity, 1, 32, 32)
        ex = w[c * (s + 1):c * (s + 1 + e)].reshape(c, e)  # (capacity*extra,) -> (capacity, extra)
        y = w[c * (s + 1 + e):c * (s + 1 + e + o)].reshape(c, o)  # (capacity*outputs,) -> (capacity, outputs)
        return x, w[c * s:c * (s + 1)], ex, y, self._split(w[c * (s + 1 + e + o):])

    def area(self, buf, k):
        """Area k (0 or 1) of a batch prepared ahead: (samples ``(ahead, *sample_shape)``, extra
        values ``(ahead, extra)``)."""
        a, s = self.ahead, self.sample
        w = self._flat(buf)[self.n_params + self.workers * self.per_worker + k * self.per_area:][:self.per_area]
        return w[:a * s].reshape(a, *self.sample_shape), w[a * s:].reshape(a, self.extra)  # (a*s,) -> (a, 1, 32, 32)

    def counters(self, buf, worker):
        """A worker's two counters ``(2,)`` int64: commands sent to it, replies it has sent."""
        return np.frombuffer(buf, dtype=np.int64, count=2, offset=CONTROL * worker)

    def _flat(self, buf):
        return np.frombuffer(buf, dtype=self.dtype, count=self.data_size // self.dtype.itemsize,
                             offset=CONTROL * self.workers)

    def _split(self, flat):
        out, i = {}, 0
        for k, s in self.shapes.items():
            n = int(np.prod(s))
            out[k] = flat[i:i + n].reshape(s)  # (n,) -> the parameter's shape
            i += n
        return out
