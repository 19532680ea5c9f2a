"""The training loop: SDLM passes over the training set, a checkpoint after every pass, exact resume.

Each pass (epoch): estimate the curvature on ``hessian_samples`` patterns, fix the step sizes
(Appendix C), visit the training set in a fresh random order in mini-batches, measure the training
error on the fly (as the paper does, §III.A) and the test error after the pass, then write a
checkpoint atomically. The checkpoint holds the weights, momentum buffers, the random generator's
state, the log so far and a fingerprint of everything that shaped training (parameters and data), so
a run interrupted at any moment resumes from its last complete pass and ends bitwise identical to an
uninterrupted one. A checkpoint with another fingerprint is never used.
"""

import sys
import time

import numpy as np

from ..errors import Lenet5Error, echo as _echo
from ..model import LeNet5
from ..parallel.pool import resolve_threads
from .checkpoint import remove_stale_temps, resume, save_checkpoint
from .fingerprint import data_digest, training_fingerprint
from .batches import augment, batches
from .sdlm import eta_for_epoch, sdlm_update, step_sizes, zero_velocity


class TrainingDiverged(Lenet5Error):
    """The loss became NaN or infinite."""


def _progress(enabled, total, description):
    """A rich progress bar on a terminal, else None."""
    if not (enabled and sys.stderr.isatty()):
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]:.4f}  {task.fields[speed]:.0f} img/s"),
                   TimeRemainingColumn(), TextColumn("(run: {task.fields[left]} left)"), transient=True)
    bar.start()
    bar.add_task(description, total=total, loss=float("nan"), speed=0.0, left="?")
    return bar


def _duration(seconds):
    """A rough time span for a person: "40 s", "12 min", "2 h 05 min"."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    m = round(s / 60)
    return f"{m} min" if m < 60 else f"{m // 60} h {m % 60:02d} min"


@np.errstate(over="ignore", invalid="ignore")  # an overflow ends as one TrainingDiverged line, not warnings
def fit(train_x, train_y, test_x, test_y, lr_scale, train, distort, checkpoint_path,
        progress=True, echo=_echo, on_epoch=None):
    """Train LeNet-5 with SDLM, resuming from ``checkpoint_path`` when it matches.

    Parameters: train_x ``(N, 1, 32, 32)`` float32, train_y ``(N,)`` ints 0-9, likewise the test set;
    ``lr_scale`` float; ``train`` a ``TrainParams``; ``distort`` a ``DistortParams``;
    ``on_epoch(rows)`` is called with the log so far after each checkpoint (and once on resume).
    Returns: (net, log rows), one row per epoch with ``LOG_FIELDS`` (rows of the epochs trained in this
    call also hold their ``seconds``).
    """
    fingerprint = training_fingerprint(lr_scale, train, distort, data_digest(train_x, train_y, test_x, test_y))
    remove_stale_temps(checkpoint_path)
    rng = np.random.default_rng(train.seed)
    net = LeNet5(seed=train.seed, dtype=train.dtype, threads=resolve_threads(train.threads))
    velocity = zero_velocity(net.params) if train.momentum else None
    rows, start = [], 0
    state = resume(checkpoint_path, fingerprint, train, echo)
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
        steps = step_sizes(net.curvature(augment(train_x[pick], rng, distort)), eta, train.mu)
        order = rng.permutation(n)
        nb = (n + bs - 1) // bs
        bar = _progress(progress, nb, f"epoch {epoch}/{train.epochs}  lr {eta:.2e}")
        loss_sum, errors = 0.0, 0
        pending = batches(train_x, order, bs, rng, distort)
        upcoming = [next(pending, None)]  # the next batch, drawn ahead

        def draw_next():
            """Draw the next batch; its images and distortions go to the workers to resample."""
            upcoming.append(next(pending, None))
            return None if upcoming[-1] is None else upcoming[-1][1:]
        try:
            for b in range(nb):
                idx, xb, warp = upcoming.pop()
                yb = train_y[idx]  # the distortions are applied inside the gradient call (model.py)
                # the next batch is drawn while the other processes finish this one (same draws, same order)
                loss, grads, y = net.loss_grads_and_outputs(xb, yb, train.criterion, train.j, warp, draw_next)
                if not np.isfinite(loss):
                    raise _diverged(epoch, b + 1, nb, f"loss is {loss}", lr_scale, checkpoint_path)
                loss_sum += loss * len(idx)
                errors += int((y.argmin(axis=1) != yb).sum())
                sdlm_update(net.params, grads, steps, velocity, train.momentum)
                if bar is not None and (b % 20 == 0 or b == nb - 1):
                    seen = min((b + 1) * bs, n)
                    per_batch = (time.perf_counter() - t0) / (b + 1)  # this epoch's pace, for the whole run
                    bar.update(0, completed=b + 1, loss=loss_sum / seen, speed=seen / (time.perf_counter() - t0),
                               left=_duration(per_batch * (nb - b - 1 + nb * (train.epochs - epoch))))
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
        save_checkpoint(checkpoint_path, net, velocity, rng, rows, fingerprint)
        timed = [r["seconds"] for r in rows if "seconds" in r]  # epochs timed by this process, this one included
        left = (train.epochs - epoch) * sum(timed) / len(timed)  # at their mean time
        echo(f"epoch {epoch:2d}/{train.epochs}  lr {eta:.2e}  loss {row['train_loss']:.4f}  "
             f"train error {100 * row['train_error']:.2f}%  test error {100 * test_error:.2f}%  "
             f"{row['seconds']:.1f} s ({n / row['seconds']:.0f} img/s)"
             + (f"  ~{_duration(left)} left" if epoch < train.epochs else ""))
        if on_epoch is not None:
            on_epoch(rows)
    return net, rows


def _diverged(epoch, batch, nb, what, lr_scale, checkpoint_path):
    """The one-line ``TrainingDiverged`` for a non-finite loss or weight at (epoch, batch)."""
    kept = (f"the checkpoint of epoch {epoch - 1} ({checkpoint_path}) is kept" if epoch > 1
            else "no epoch was completed, so no checkpoint was written")
    return TrainingDiverged(f"training diverged at epoch {epoch}, batch {batch}/{nb}: {what} "
                            f"(lr_scale={lr_scale} too large?); {kept}")
