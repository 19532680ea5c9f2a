"""The training loop: SDLM passes over the training set, a checkpoint after every pass, exact resume.

Each pass (epoch): estimate the curvature on ``hessian_samples`` patterns, fix the step sizes
(Appendix C), visit the training set in a fresh random order in mini-batches, measure the training
error on the fly (as the paper does, §III.A) and the test error after the pass, then write a
checkpoint atomically. The checkpoint holds the weights, momentum buffers, the random generator's
state, the log so far and a fingerprint of everything that shaped training (parameters and data), so
a run interrupted at any moment resumes from its last complete pass and ends bitwise identical to an
uninterrupted one. A checkpoint with another fingerprint is never used.
"""

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from .checkpoint import load_arrays
from .config import params_fingerprint
from .distort import distort_batch, keep_originals
from .errors import Lenet5Error
from .model import DTYPES, PARAM_SHAPES, LeNet5
from .sdlm import eta_for_epoch, sdlm_update, step_sizes, zero_velocity
from .trainlog import LOG_FIELDS


def resolve_threads(threads):
    """``train.threads``: 0 means one process per CPU this process may use (``workers.py``)."""
    return int(threads) or len(os.sched_getaffinity(0))


class TrainingDiverged(Lenet5Error):
    """The loss became NaN or infinite."""


def data_digest(*arrays):
    """A short hash of the training/test arrays (shapes, dtypes and bytes)."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.data)
    return h.hexdigest()


# The modules whose code decides the weights: a checkpoint made by other code is not resumed.
TRAINING_CODE = ("layers.py", "model.py", "infer.py", "workers.py", "parallel.py", "losses.py", "bitmaps.py",
                 "sdlm.py", "distort.py", "train.py")


def code_digest():
    """A short hash of the source of ``TRAINING_CODE``."""
    h = hashlib.blake2b(digest_size=16)
    for name in TRAINING_CODE:
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()


def training_fingerprint(lr_scale, train, distort, digest):
    """Fingerprint of what shapes the weights: params, data and code. ``epochs`` is left out on
    purpose: the schedule does not depend on it, so a finished 20-epoch run can be extended to 25
    and still match a fresh one."""
    t = train.to_dict()
    t.pop("epochs")
    t["threads"] = resolve_threads(train.threads)  # chunk sums depend on it, so bitwise results do too
    return params_fingerprint({"lr_scale": lr_scale, "train": t, "distort": distort.to_dict(), "data": digest,
                               "code": code_digest()})


def _resume(path, fingerprint, train, echo):
    """The state saved in ``path`` if it is a complete checkpoint with this fingerprint, else None.

    Returns (params, rng_state, velocity or None, log rows, epochs done); every refusal is echoed
    as one line naming the file, and nothing from a refused file is used.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        params, extra = load_arrays(path, PARAM_SHAPES, DTYPES)
    except Lenet5Error as e:
        echo(f"ignoring checkpoint: {e}; starting fresh")
        return None
    needed = {"epoch", "fingerprint", "rng_state", "log"}
    if train.momentum:
        needed |= {f"velocity/{k}" for k in PARAM_SHAPES}
    if not needed <= set(extra):
        echo(f"ignoring checkpoint {path}: it lacks training state {sorted(needed - set(extra))}; starting fresh")
        return None
    if str(extra["fingerprint"]) != fingerprint:
        echo(f"ignoring checkpoint {path}: made with other parameters, data or code; starting fresh")
        return None
    if params["C1.weight"].dtype.name != train.dtype:
        echo(f"ignoring checkpoint {path}: dtype {params['C1.weight'].dtype} differs from {train.dtype}; starting fresh")
        return None
    try:
        return (params, *_training_state(extra, params, train.momentum))
    except (ValueError, TypeError, KeyError) as e:
        echo(f"ignoring checkpoint {path}: damaged training state ({e}); starting fresh")
        return None


def _training_state(extra, params, momentum):
    """(rng_state, velocity or None, log rows, epochs done) from a checkpoint's extra arrays, checked."""
    done = int(extra["epoch"])
    log = extra["log"]
    if log.dtype != np.float64 or log.shape != (done, len(LOG_FIELDS)) or done < 1:
        raise ValueError(f"log of shape {log.shape} does not match epoch {done}")
    rows = [dict(zip(LOG_FIELDS, (int(r[0]), *map(float, r[1:])))) for r in log]
    if [r["epoch"] for r in rows] != list(range(1, done + 1)):
        raise ValueError("log epochs are not 1..epoch")
    rng_state = json.loads(str(extra["rng_state"]))
    np.random.default_rng().bit_generator.state = rng_state  # raises on a malformed state
    velocity = None
    if momentum:
        velocity = {k: extra[f"velocity/{k}"] for k in params}
        for k, v in velocity.items():
            if v.shape != params[k].shape or v.dtype != params[k].dtype or not np.isfinite(v).all():
                raise ValueError(f"velocity/{k} is not a finite {params[k].dtype} array of shape {params[k].shape}")
    return rng_state, velocity, rows, done


def _progress(enabled, total, description):
    """A rich progress bar on a terminal, else None."""
    if not (enabled and sys.stderr.isatty()):
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]:.4f}  {task.fields[speed]:.0f} img/s"),
                   TimeRemainingColumn(), transient=True)
    bar.start()
    bar.add_task(description, total=total, loss=float("nan"), speed=0.0)
    return bar


def _echo(msg):
    print(msg, file=sys.stderr, flush=True)


@np.errstate(over="ignore", invalid="ignore")  # an overflow ends as one TrainingDiverged line, not warnings
def fit(train_x, train_y, test_x, test_y, lr_scale, train, distort, checkpoint_path,
        progress=True, echo=_echo, on_epoch=None):
    """Train LeNet-5 with SDLM, resuming from ``checkpoint_path`` when it matches.

    Parameters: train_x ``(N, 1, 32, 32)`` float32, train_y ``(N,)`` ints 0-9, likewise the test set;
    ``lr_scale`` float; ``train`` a ``TrainParams``; ``distort`` a ``DistortParams``;
    ``on_epoch(rows)`` is called with the log so far after each checkpoint (and once on resume).
    Returns: (net, log rows), one row per epoch with ``LOG_FIELDS``.
    """
    fingerprint = training_fingerprint(lr_scale, train, distort, data_digest(train_x, train_y, test_x, test_y))
    _remove_stale_temps(checkpoint_path)
    rng = np.random.default_rng(train.seed)
    net = LeNet5(seed=train.seed, dtype=train.dtype, threads=resolve_threads(train.threads))
    velocity = zero_velocity(net.params) if train.momentum else None
    rows, start = [], 0
    state = _resume(checkpoint_path, fingerprint, train, echo)
    if state is not None:
        params, rng_state, saved_velocity, saved_rows, done = state
        if done > train.epochs:
            echo(f"checkpoint {checkpoint_path} is at epoch {done}, beyond epochs={train.epochs}; starting fresh")
        else:
            net = LeNet5.from_params(params)
            net.threads = resolve_threads(train.threads)
            rng.bit_generator.state = rng_state
            if velocity is not None:
                velocity = {k: np.array(v, dtype=net.dtype) for k, v in saved_velocity.items()}
            rows, start = saved_rows, done
            echo(f"resuming from checkpoint {checkpoint_path} after epoch {done}")
            if on_epoch is not None:
                on_epoch(rows)
    n, bs = len(train_x), train.batch_size
    for epoch in range(start + 1, train.epochs + 1):
        t0 = time.perf_counter()
        eta = eta_for_epoch(epoch, lr_scale, train.start_epochs, train.start_factor)
        pick = rng.choice(n, size=min(train.hessian_samples, n), replace=False)
        steps = step_sizes(net.curvature(_augment(train_x[pick], rng, distort)), eta, train.mu)
        order = rng.permutation(n)
        nb = (n + bs - 1) // bs
        bar = _progress(progress, nb, f"epoch {epoch}/{train.epochs}")
        loss_sum, errors = 0.0, 0
        try:
            for b in range(nb):
                idx = order[b * bs:(b + 1) * bs]
                xb, yb = _augment(train_x[idx], rng, distort), train_y[idx]
                loss, grads, y = net.loss_grads_and_outputs(xb, yb, train.criterion, train.j)
                if not np.isfinite(loss):
                    raise _diverged(epoch, b + 1, nb, f"loss is {loss}", lr_scale, checkpoint_path)
                loss_sum += loss * len(idx)
                errors += int((y.argmin(axis=1) != yb).sum())
                sdlm_update(net.params, grads, steps, velocity, train.momentum)
                if bar is not None and (b % 20 == 0 or b == nb - 1):
                    seen = min((b + 1) * bs, n)
                    bar.update(0, completed=b + 1, loss=loss_sum / seen,
                               speed=seen / (time.perf_counter() - t0))
        finally:
            if bar is not None:
                bar.stop()
        bad = [k for k, w in net.params.items() if not np.isfinite(w).all()]
        if bad:  # the last update overflowed: never checkpoint such weights
            raise _diverged(epoch, nb, nb, f"{bad[0]} became NaN or infinite", lr_scale, checkpoint_path)
        test_error = float((net.predict(test_x) != test_y).mean()) if len(test_x) else float("nan")
        row = {"epoch": epoch, "train_loss": loss_sum / n, "train_error": errors / n,
               "test_error": test_error, "lr": eta, "seconds": time.perf_counter() - t0}
        rows.append(row)
        _save_checkpoint(checkpoint_path, net, velocity, rng, rows, fingerprint)
        echo(f"epoch {epoch:2d}/{train.epochs}  eta {eta:.2e}  loss {row['train_loss']:.4f}  "
             f"train error {100 * row['train_error']:.2f}%  test error {100 * test_error:.2f}%  "
             f"{row['seconds']:.1f} s ({n / row['seconds']:.0f} img/s)")
        if on_epoch is not None:
            on_epoch(rows)
    return net, rows


def _diverged(epoch, batch, nb, what, lr_scale, checkpoint_path):
    """The one-line ``TrainingDiverged`` for a non-finite loss or weight at (epoch, batch)."""
    kept = (f"the checkpoint of epoch {epoch - 1} ({checkpoint_path}) is kept" if epoch > 1
            else "no epoch was completed, so no checkpoint was written")
    return TrainingDiverged(f"training diverged at epoch {epoch}, batch {batch}/{nb}: {what} "
                            f"(lr_scale={lr_scale} too large?); {kept}")


def _augment(x, rng, distort):
    """Distorted copies of x when distortions are enabled (drawn from ``rng``), a share
    ``distort.originals`` of them left as they are; else x itself."""
    if not distort.enabled:
        return x
    d = distort_batch(x, rng, distort.translate, distort.scale, distort.squeeze, distort.shear)
    return keep_originals(d, x, rng, distort.originals)


def _save_checkpoint(path, net, velocity, rng, rows, fingerprint):
    """Everything needed to resume, in one atomically written ``.npz``."""
    extra = {"epoch": np.int64(rows[-1]["epoch"]), "fingerprint": np.array(fingerprint),
             "rng_state": np.array(json.dumps(rng.bit_generator.state)),
             "log": np.array([[r[k] for k in LOG_FIELDS] for r in rows], dtype=np.float64)}
    for k, v in (velocity or {}).items():
        extra[f"velocity/{k}"] = v
    net.save(path, extra)


def _remove_stale_temps(path):
    """Delete temp files a killed run left beside the checkpoint (``atomic`` names them ``.<name>.*.tmp``)."""
    path = Path(path)
    if path.parent.is_dir():
        for tmp in path.parent.glob(f".{path.name}.*.tmp"):
            tmp.unlink(missing_ok=True)
