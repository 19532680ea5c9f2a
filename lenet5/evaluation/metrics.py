"""Test-set figures from the network's RBF penalties: metrics, confusion data, confident mistakes.

The output layer gives, per image, ten penalties ``y`` (squared Euclidean distances to the class
centres, eq. 7): the smaller the penalty, the more likely the class, so the prediction is the argmin
(ties go to the lower digit). Everything returned here is plain Python (``int``, ``float``, ``None``,
``list``, ``dict``) so it can go straight to ``json.dumps``. NumPy and the standard library only.
"""

import numpy as np

from ..errors import Lenet5Error
from ..store.atomic import write_text

NUM_CLASSES = 10
DECIMALS = 6  # rounding of every float in the metrics dict


def _check_labels(labels, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as an int64 ``(N,)`` array of digits 0..9, or raise ``Lenet5Error``."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise Lenet5Error(f"{name}: expected shape (N,), got {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise Lenet5Error(f"{name}: expected integer digits, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        bad = labels[(labels < 0) | (labels >= NUM_CLASSES)][0]
        raise Lenet5Error(f"{name}: expected digits 0..{NUM_CLASSES - 1}, got {bad}")
    return labels


def _check_scores(y, labels) -> tuple[np.ndarray, np.ndarray]:
    """Validate penalties ``y`` (N, 10) against ``labels`` (N,); return both as arrays."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] != NUM_CLASSES:
        raise Lenet5Error(f"y: expected RBF penalties of shape (N, {NUM_CLASSES}), got {y.shape}")
    labels = _check_labels(labels)
    if labels.shape[0] != y.shape[0]:
        raise Lenet5Error(f"labels: expected {y.shape[0]} labels to match y, got {labels.shape[0]}")
    if not np.all(np.isfinite(y)):
        rows = np.flatnonzero(~np.all(np.isfinite(y), axis=1))
        raise Lenet5Error(f"y: expected finite penalties, row {rows[0]} has NaN or inf")
    return y, labels


def predictions(y) -> np.ndarray:
    """Predicted digits: the argmin of the penalties.

    Parameters
    ----------
    y : array of shape (N, 10), RBF penalties (smaller = more likely).

    Returns
    -------
    pred : int64 array of shape (N,)
    """
    y = np.asarray(y)
    if y.ndim != 2 or y.shape[1] != NUM_CLASSES:
        raise Lenet5Error(f"y: expected RBF penalties of shape (N, {NUM_CLASSES}), got {y.shape}")
    return np.argmin(y, axis=1).astype(np.int64)


def confusion_matrix(pred, labels) -> np.ndarray:
    """Counts of (true, predicted) pairs: int64 array (10, 10), rows = true, columns = predicted."""
    pred, labels = _check_labels(pred, "pred"), _check_labels(labels)
    if pred.shape != labels.shape:
        raise Lenet5Error(f"pred: expected {labels.shape[0]} predictions to match labels, got {pred.shape[0]}")
    counts = np.bincount(labels * NUM_CLASSES + pred, minlength=NUM_CLASSES * NUM_CLASSES)
    return counts.reshape(NUM_CLASSES, NUM_CLASSES)  # (100,) -> (true 10, predicted 10)


def classification_metrics(y, labels, loss: float | None = None) -> dict:
    """Accuracy, error rate, per-class accuracy and confusion matrix, JSON-ready.

    Parameters
    ----------
    y : array of shape (N, 10), RBF penalties, N >= 1.
    labels : int array of shape (N,), the true digits.
    loss : the mean test loss, reported as ``mean_loss`` when given (must be finite).

    Returns
    -------
    dict with ``accuracy``, ``error_rate`` (fractions 0..1, rounded to 6 decimals), ``errors`` and
    ``n`` (ints), ``mean_loss`` (only when ``loss`` is given), ``per_class_accuracy`` (keys "0".."9";
    the value is ``None`` -- JSON ``null`` -- for a digit absent from ``labels``, since 0 would read
    as "always wrong") and ``confusion`` (10 lists of 10 ints, rows = true, columns = predicted).
    """
    y, labels = _check_scores(y, labels)
    n = int(labels.shape[0])
    if n == 0:
        raise Lenet5Error("labels: expected at least one test image, got none")
    conf = confusion_matrix(predictions(y), labels)
    correct = int(np.trace(conf))
    out = {
        "accuracy": round(correct / n, DECIMALS),
        "error_rate": round((n - correct) / n, DECIMALS),
        "errors": n - correct,
        "n": n,
    }
    if loss is not None:
        loss = float(loss)
        if not np.isfinite(loss):
            raise Lenet5Error(f"loss: expected a finite mean test loss, got {loss}")
        out["mean_loss"] = round(loss, DECIMALS)
    totals = conf.sum(axis=1)  # (10,) images per true digit
    out["per_class_accuracy"] = {
        str(d): (round(int(conf[d, d]) / int(totals[d]), DECIMALS) if totals[d] else None)
        for d in range(NUM_CLASSES)
    }
    out["confusion"] = [[int(c) for c in row] for row in conf]
    return out


def confusion_rows(pred, labels) -> list[dict]:
    """One ``{"actual": int, "predicted": int}`` per image, in input order.

    This is the data DVC's ``confusion`` plot template reads (``x: actual, y: predicted``), written
    either as JSON ``{"confusion": rows}`` or as CSV (see ``write_confusion_csv``).
    """
    pred, labels = _check_labels(pred, "pred"), _check_labels(labels)
    if pred.shape != labels.shape:
        raise Lenet5Error(f"pred: expected {labels.shape[0]} predictions to match labels, got {pred.shape[0]}")
    return [{"actual": int(a), "predicted": int(p)} for a, p in zip(labels, pred)]


def write_confusion_csv(path, pred, labels) -> None:
    """Write ``actual,predicted`` (header, then one line per image) to ``path`` atomically."""
    rows = confusion_rows(pred, labels)
    lines = ["actual,predicted"] + [f"{r['actual']},{r['predicted']}" for r in rows]
    write_text(path, "\n".join(lines) + "\n")


def margins(y) -> np.ndarray:
    """Confidence of each answer: second smallest penalty minus the smallest, float64 (N,), >= 0.

    A large margin means the winning class beat the runner-up by far; 0 means a tie.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] != NUM_CLASSES:
        raise Lenet5Error(f"y: expected RBF penalties of shape (N, {NUM_CLASSES}), got {y.shape}")
    two = np.partition(y, 1, axis=1)[:, :2]  # (N, 2): smallest, second smallest
    return two[:, 1] - two[:, 0]


def most_confident_mistakes(y, labels, k: int) -> np.ndarray:
    """Indices of misclassified images, most confident wrong answer first, at most ``k`` of them.

    Confidence is ``margins(y)``: how far the (wrong) winning penalty is below the runner-up's.
    Equal margins keep input order.

    Parameters
    ----------
    y : array of shape (N, 10), RBF penalties.
    labels : int array of shape (N,), the true digits.
    k : how many to return (>= 0); fewer come back when there are fewer mistakes.

    Returns
    -------
    idx : int64 array of shape (min(k, errors),), indices into ``y`` and ``labels``.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise Lenet5Error(f"k: expected a whole number >= 0 of mistakes to show, got {k!r}")
    y, labels = _check_scores(y, labels)
    wrong = np.flatnonzero(predictions(y) != labels)  # (errors,)
    order = np.argsort(-margins(y)[wrong], kind="stable")  # largest margin first
    return wrong[order][: int(k)].astype(np.int64)
