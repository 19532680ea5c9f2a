"""Rejection as in the paper (§III): answer "unsure" when the two best classes are too close.

The confidence of an answer is ``metrics.margins``: the runner-up's RBF penalty minus the winner's.
A threshold ``T`` rejects every image whose margin is below ``T``; the rest are accepted and
classified. Raising ``T`` trades rejected images for a lower error among the accepted ones; the
paper reports this as the share of test images that must be rejected to reach a given error.

``rejection_curve`` lists every distinct operating point on a test set; ``reject_for_error`` picks
the smallest rejection that reaches a target error; ``rejection_figures`` gives the ``eval.json``
keys; ``read_threshold`` reads the threshold back for ``lenet5 predict``. NumPy and the standard
library only.
"""

import json
import math
from pathlib import Path

import numpy as np

from ..errors import Lenet5Error
from .metrics import DECIMALS, _check_scores, margins, predictions

# error rates among accepted test digits for which eval.json reports the rejection needed
TARGETS = ((0.005, "reject_for_0.5%_error"), (0.001, "reject_for_0.1%_error"))
THRESHOLD_KEY = "reject_threshold"  # the margin that reaches the first target (0.5 %)
# used by ``lenet5 predict`` when no eval.json says otherwise: about the 0.5 % threshold that the
# evaluate step measured for the models of params.yaml (20 epochs, seed 0): 9.97 for an earlier
# model (0.67 % test error, rejecting 0.36 %), 10.29 for the committed one (0.72 %, rejecting 0.38 %)
DEFAULT_THRESHOLD = 10.0
MAX_JSON_BYTES = 1_000_000  # an eval.json is about 1 kB


def rejection_curve(y, labels) -> dict:
    """Every distinct operating point of margin-based rejection on a labelled set.

    Parameters
    ----------
    y : array of shape (N, 10), RBF penalties, N >= 1.
    labels : int array of shape (N,), the true digits.

    Returns
    -------
    dict of float64 arrays of one length K (K = distinct margins + 1), ordered by rising threshold:
    ``threshold`` (reject margins below it; the first is 0, rejecting none; the last is above every
    margin, rejecting all),
    ``rejected`` (share of images rejected, 0..1) and ``error`` (share of the accepted ones that are
    misclassified; 0 when none is accepted).
    """
    y, labels = _check_scores(y, labels)
    n = labels.shape[0]
    if n == 0:
        raise Lenet5Error("labels: expected at least one test image, got none")
    m = margins(y)
    order = np.argsort(m, kind="stable")
    ms, wrong = m[order], (predictions(y) != labels)[order]
    cum_wrong = np.concatenate([[0], np.cumsum(wrong)])  # (N+1,): mistakes among the i smallest margins
    values = np.unique(ms)  # (K-1,) candidate thresholds
    start = np.searchsorted(ms, values, side="left")  # images with a margin below each value
    thresholds = np.append(values, np.nextafter(ms[-1], np.inf))
    thresholds[0] = 0.0  # rejects nothing either, also on new images (margins are >= 0)
    k = np.append(start, n)  # (K,) images rejected
    kept = n - k
    left = cum_wrong[-1] - cum_wrong[k]  # mistakes among the accepted
    error = np.divide(left, kept, out=np.zeros(len(k)), where=kept > 0)
    return {"threshold": thresholds.astype(np.float64), "rejected": k / n, "error": error}


def reject_for_error(curve: dict, target: float) -> tuple[float, float]:
    """The smallest rejection whose error among accepted digits is at most ``target``.

    Returns ``(rejected share, threshold)`` from a ``rejection_curve``. Rejecting everything always
    qualifies (no accepted mistakes), so there is always an answer.
    """
    if not (isinstance(target, (int, float)) and 0 <= target < 1):
        raise Lenet5Error(f"target: expected an error rate in [0, 1), got {target!r}")
    i = int(np.flatnonzero(curve["error"] <= target)[0])
    return float(curve["rejected"][i]), float(curve["threshold"][i])


def rejection_figures(curve: dict) -> dict:
    """The ``eval.json`` keys: the rejection needed for each of ``TARGETS``, and the threshold of
    the first (rounded to 6 decimals, like every metric)."""
    out, threshold = {}, None
    for target, key in TARGETS:
        rate, t = reject_for_error(curve, target)
        out[key] = round(rate, DECIMALS)
        threshold = t if threshold is None else threshold
    out[THRESHOLD_KEY] = round(threshold, DECIMALS)
    return out


def read_threshold(path) -> float:
    """The ``reject_threshold`` stored in an ``eval.json`` written by the evaluate step.

    Raises ``Lenet5Error`` naming ``path`` when it is missing, too large, not JSON, or has no
    finite threshold >= 0 (an eval.json from before rejection was measured: rerun the evaluate step).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise Lenet5Error(f"{path}: {size:,} bytes, expected an eval.json of at most {MAX_JSON_BYTES:,}")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Lenet5Error(f"{path}: no such file (run `lenet5 evaluate`, or give --reject)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Lenet5Error(f"{path}: not a JSON metrics file ({e})") from None
    value = data.get(THRESHOLD_KEY) if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise Lenet5Error(f"{path}: expected a number >= 0 under '{THRESHOLD_KEY}', got {value!r} "
                          "(rerun `lenet5 evaluate`, or give --reject)")
    return float(value)
