"""A worker process's side of a pool: read a command, do it in shared memory, reply.

Commands come as short JSON messages over the worker's pipe, in the order the calling process sent
them, and each but ``stop`` gets exactly one reply, which names the command's ``op`` (``pool.py``
reads them in the same order and checks it):

- ``{"op": <compute op>, "n", "criterion", "j", "extra", "area", "offset"}``: compute this worker's
  chunk of n samples with the Spec's ``compute``. The samples are the worker's own slot (images,
  labels and extra values the caller copied there), or, when ``area`` is a number, rows ``offset``
  to ``offset + n`` of that area of samples prepared ahead (their extra values already used up).
  The outputs and per-parameter results go to the worker's slot; the reply is ``{"loss": ...}``.
- ``{"op": "prepare", "area", "start", "stop"}``: replace rows ``start`` to ``stop`` of an area's
  samples by ``spec.prepare(samples, extra)`` (the training loop's distortions: each image is
  resampled on its own, so which process prepares which rows changes no byte). A worker is sent
  this right after a compute command, for the batch after the current one, so it does the work
  while the calling process combines the results and updates the weights. Reply
  ``{"prepared": stop - start}``.
- ``{"op": "stop"}``: return, without a reply.

Any exception in a command is caught and replied as ``{"error": "Type: message"}``; the caller
raises it. Between commands the worker watches its command counter for a few milliseconds before it
sleeps in its pipe read (``shared.await_count``).
"""

import json
import signal

import numpy as np

from .shared import await_count


def serve(conn, buf, layout, worker, spec, inherited, spin):
    """The worker's loop, until its pipe closes or a ``stop`` command comes.

    ``inherited`` are the parent's ends of every pipe, which the fork copied into this process: they
    are closed first, so that when the parent dies its pipe really closes and this loop ends.
    """
    for c in inherited:
        c.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    params = layout.params(buf)  # the parent writes the current weights here before each command
    slot = layout.slot(buf, worker)
    areas = [layout.area(buf, k) for k in range(2)] if layout.ahead else []
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
            if cmd["op"] == "prepare":
                x, extra = areas[cmd["area"]]
                a, b = cmd["start"], cmd["stop"]
                x[a:b] = spec.prepare(x[a:b], extra[a:b])
                reply = {"prepared": b - a}
            else:
                reply = _compute(cmd, params, slot, areas, spec.compute)
        except Exception as e:  # reported to the parent, which raises it
            reply = {"error": f"{type(e).__name__}: {e}"}
        reply["op"] = cmd["op"]  # the parent checks that it reads the reply it waits for
        conn.send_bytes(json.dumps(reply).encode())
        counters[1] += 1


def _compute(cmd, params, slot, areas, compute):
    """One chunk: the reply of a compute command, its outputs and results written to the slot."""
    x, labels, extra, y, out = slot
    n = cmd["n"]
    lab = labels[:n].astype(np.int64) if cmd["op"] == "grads" else None  # (stored as floats)
    if cmd.get("area") is None:
        xs, ex = x[:n], extra[:n] if cmd["extra"] else None
    else:  # prepared ahead: the extra values are already applied
        xs, ex = areas[cmd["area"]][0][cmd["offset"]:cmd["offset"] + n], None
    loss, result, y_n = compute(cmd["op"], xs, lab, params, cmd["criterion"], cmd["j"], ex)
    if y_n is not None:
        y[:n] = y_n
    for k, v in result.items():
        out[k][...] = v
    return {"loss": float(loss)}
