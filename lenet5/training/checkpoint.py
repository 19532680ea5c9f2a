"""Training checkpoints: everything needed to resume a run, saved after every epoch, checked on load.

A checkpoint is a LeNet-5 ``.npz`` (``store/npz.py``) whose extra arrays hold the epoch, the run's
fingerprint (``fingerprint.py``), the random generator's state, the log so far and, with momentum,
the velocity buffers. ``resume`` returns that state only when the file is complete, its arrays match
their digest (``store/npz.py``), C3 keeps to Table I, and it was made by a run with the same
fingerprint; every refusal is one line, and nothing from a refused file is used.
"""

import json
from pathlib import Path

import numpy as np

from ..errors import Lenet5Error
from ..nn.architecture import DTYPES, PARAM_SHAPES, outside_table_i
from ..store.atomic import remove_stale_temps_in
from ..store.npz import load_arrays
from ..store.trainlog import LOG_FIELDS

MAX_RNG_JSON = 4096


def resume(path, fingerprint, train, echo):
    """The state saved in ``path`` if it is a complete checkpoint with this fingerprint, else None.

    Returns (params, rng_state, velocity or None, log rows, epochs done); every refusal is echoed
    as one line naming the file.
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
    if outside_table_i(params["C3.weight"]):
        echo(f"ignoring checkpoint {path}: C3.weight has connections outside Table I; starting fresh")
        return None
    if str(extra["fingerprint"]) != fingerprint:
        echo(f"ignoring checkpoint {path}: made with other parameters, data or code; starting fresh")
        return None
    if params["C1.weight"].dtype.name != train.dtype:
        echo(f"ignoring checkpoint {path}: dtype {params['C1.weight'].dtype} differs from {train.dtype}; starting fresh")
        return None
    try:
        return (params, *_training_state(extra, params, train.momentum))
    except (ValueError, TypeError, KeyError, RecursionError) as e:
        echo(f"ignoring checkpoint {path}: damaged training state ({str(e)[:200] or type(e).__name__}); "
             f"starting fresh")
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
    text = str(extra["rng_state"])
    if len(text) > MAX_RNG_JSON:  # a PCG64 state is about 200 characters
        raise ValueError(f"rng_state of {len(text)} characters")
    rng_state = json.loads(text)
    np.random.default_rng().bit_generator.state = rng_state  # raises on a malformed state
    velocity = None
    if momentum:
        velocity = {k: extra[f"velocity/{k}"] for k in params}
        for k, v in velocity.items():
            if v.shape != params[k].shape or v.dtype != params[k].dtype or not np.isfinite(v).all():
                raise ValueError(f"velocity/{k} is not a finite {params[k].dtype} array of shape {params[k].shape}")
    return rng_state, velocity, rows, done


def save_checkpoint(path, net, velocity, rng, rows, fingerprint):
    """Everything needed to resume, in one atomically written ``.npz``."""
    extra = {"epoch": np.int64(rows[-1]["epoch"]), "fingerprint": np.array(fingerprint),
             "rng_state": np.array(json.dumps(rng.bit_generator.state)),
             "log": np.array([[r[k] for k in LOG_FIELDS] for r in rows], dtype=np.float64)}
    for k, v in (velocity or {}).items():
        extra[f"velocity/{k}"] = v
    net.save(path, extra)


def remove_stale_temps(path):
    """Delete temp files a killed run left beside the checkpoint (``store/atomic.py``)."""
    remove_stale_temps_in(Path(path).parent)
