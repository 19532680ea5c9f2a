"""PNG figures of a run: learning curves, confusion matrix, misclassified digits, error vs rejection.

Matplotlib runs on the non-interactive Agg backend, chosen here before ``pyplot`` is imported, so
the figures render without a display. Every PNG (about 100 dpi) is written through
``store/atomic.py``, and each figure is closed once saved. The training log they plot is read by
``store/trainlog.py``.
"""

import math

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from ..errors import Lenet5Error  # noqa: E402
from ..store.atomic import atomic_path  # noqa: E402
from ..store.trainlog import LOG_FIELDS  # noqa: E402

DPI = 100
# percent, LeNet-5's test error in LeCun et al. 1998 (§III.C), without and with distorted training digits
PAPER_TEST_ERRORS = ((0.95, "--", "paper: 0.95 %, no distortions"), (0.80, ":", "paper: 0.80 %, distortions"))


def _save(fig, path) -> None:
    """Write ``fig`` to ``path`` as PNG atomically, then close it."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI)
    finally:
        plt.close(fig)


def _pct(rows, key) -> np.ndarray:
    return np.array([100.0 * float(r[key]) for r in rows])


def _minor_label(v, _pos) -> str:
    """Label the 2s and 5s between decades of a log axis (0.2, 0.5, 2, 5 ...), and every tick from
    0.5 to 0.8, where the test error of LeNet-5 lies (0.5, 0.6, 0.7, 0.8)."""
    mantissa = round(v / 10.0 ** math.floor(math.log10(v)), 6) if v > 0 else 0
    return f"{v:g}" if mantissa in (2, 5) or 0.5 <= round(v, 6) <= 0.8 else ""


def plot_learning_curves(log_rows: list[dict], path, distorted: bool = True) -> None:
    """Train/test error (%) and train loss per epoch, from training-log rows (see ``read_log_csv``).

    The error panel uses a log scale when every error is positive, labels the final test error and
    shows the paper's test errors (0.95 % without distortions, 0.80 % with them) as gray lines; the
    training error is the one measured on the fly, on distorted digits when ``distorted``. The loss
    panel also draws the global learning rate on a right-hand axis.
    """
    for i, r in enumerate(log_rows):
        missing = [k for k in LOG_FIELDS if k not in r]
        if missing:
            raise Lenet5Error(f"log_rows[{i}]: expected keys {', '.join(LOG_FIELDS)}, missing {', '.join(missing)}")
    epochs = [int(r["epoch"]) for r in log_rows]
    train_err, test_err = _pct(log_rows, "train_error"), _pct(log_rows, "test_error")
    fig, (ax_err, ax_loss) = plt.subplots(1, 2, figsize=(11, 4.2))
    on_the_fly = "train (on the fly, distorted digits)" if distorted else "train (on the fly)"
    ax_err.plot(epochs, train_err, "o-", ms=3, label=on_the_fly)
    ax_err.plot(epochs, test_err, "s-", ms=3, label="test")
    if len(test_err) and np.isfinite(test_err[-1]):
        ax_err.annotate(f"final test {test_err[-1]:.2f} %", (epochs[-1], test_err[-1]), xytext=(0, 7),
                        textcoords="offset points", ha="right", fontsize=9, color="C1", weight="bold",
                        bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 1})
    for value, style, label in PAPER_TEST_ERRORS:
        ax_err.axhline(value, color="gray", ls=style, lw=1, label=label)
    values = np.concatenate([train_err, test_err])
    if values.size and np.all(values[np.isfinite(values)] > 0):
        ax_err.set_yscale("log")
        ax_err.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 0.1, not 10^-1
        ax_err.yaxis.set_minor_formatter(FuncFormatter(_minor_label))
    ax_err.set(xlabel="epoch", ylabel="error (%)", title="Error rate")
    ax_err.grid(True, which="both", alpha=0.3)
    ax_err.legend(fontsize=8)
    ax_loss.plot(epochs, [float(r["train_loss"]) for r in log_rows], "o-", ms=3, color="C2", label="train loss")
    ax_loss.set(xlabel="epoch", ylabel="mean train loss", title="Training loss")
    ax_loss.grid(True, alpha=0.3)
    lrs = [float(r["lr"]) for r in log_rows]
    if lrs:
        ax_lr = ax_loss.twinx()
        ax_lr.step(epochs, lrs, where="mid", color="gray", ls=":", lw=1, label="learning rate (global eta)")
        ax_lr.set_ylabel("learning rate (global eta)", color="gray")
        if all(v > 0 for v in lrs):
            ax_lr.set_yscale("log")
        ax_lr.legend(loc="upper center", fontsize=8)
    ax_loss.legend(loc="upper right", fontsize=8)
    for ax in (ax_err, ax_loss):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if not log_rows:
        for ax in (ax_err, ax_loss):
            ax.text(0.5, 0.5, "no epochs logged yet", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    _save(fig, path)


def plot_confusion(confusion, path) -> None:
    """Annotated heatmap of a (10, 10) count matrix: true digit on y, predicted on x (log colours)."""
    conf = np.asarray(confusion)
    if conf.shape != (10, 10) or not np.all(np.isfinite(conf)) or np.any(conf < 0):
        raise Lenet5Error(f"confusion: expected a (10, 10) matrix of counts >= 0, got shape {conf.shape}")
    conf = conf.astype(np.int64)
    total, correct = int(conf.sum()), int(np.trace(conf))
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    shown = np.ma.masked_equal(conf, 0)  # zero cells stay white
    im = ax.imshow(shown, cmap="Blues", norm=LogNorm(vmin=1, vmax=max(2, int(conf.max()))))
    threshold = math.sqrt(max(2, int(conf.max())))  # past the middle of the log scale: white text
    for t in range(10):
        for p in range(10):
            c = int(conf[t, p])
            ax.text(p, t, str(c), ha="center", va="center", fontsize=8,
                    color="white" if c > threshold else ("lightgray" if c == 0 else "black"))
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set(xlabel="predicted digit", ylabel="true digit")
    errors = f"{total - correct} errors of {total} ({100.0 * (total - correct) / total:.2f} %)" if total else "empty"
    ax.set_title(f"Confusion matrix: {errors}")
    fig.colorbar(im, ax=ax, label="images (log scale)")
    fig.tight_layout()
    _save(fig, path)


def plot_misclassified(images, labels, preds, path, cols: int = 10, indices=None) -> None:
    """Gallery of digits titled "true 4 → pred 9", ink dark on white; K = 0 gives a "no errors" card.

    Parameters
    ----------
    images : float array of shape (K, 1, 32, 32), preprocessed digits (high values = ink).
    labels, preds : int arrays of shape (K,), true and predicted digits.
    cols : images per row (>= 1).
    indices : int array of shape (K,), the digits' test-set indices, shown as "#N" above each title
        (so ``lenet5 predict --idx data/raw/t10k-images-idx3-ubyte --index N`` shows it again).
    """
    images = np.asarray(images, dtype=np.float64)
    labels, preds = np.asarray(labels).reshape(-1), np.asarray(preds).reshape(-1)
    if images.ndim != 4 or images.shape[1] != 1:
        raise Lenet5Error(f"images: expected shape (K, 1, H, W), got {images.shape}")
    k = images.shape[0]
    if labels.shape != (k,) or preds.shape != (k,):
        raise Lenet5Error(f"labels/preds: expected {k} of each to match images, got {labels.size} and {preds.size}")
    if indices is not None and np.asarray(indices).reshape(-1).shape != (k,):
        raise Lenet5Error(f"indices: expected {k} test-set indices to match images, got {np.asarray(indices).size}")
    if int(cols) < 1:
        raise Lenet5Error(f"cols: expected a positive number of columns, got {cols}")
    if k == 0:
        fig = plt.figure(figsize=(4, 1.5))
        fig.text(0.5, 0.5, "no errors: every test digit was classified correctly",
                 ha="center", va="center", fontsize=9, wrap=True)
        _save(fig, path)
        return
    cols = min(int(cols), k)
    rows = math.ceil(k / cols)
    tall = 1.45 if indices is None else 1.65  # room for the index line
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, tall * rows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i >= k:
            continue
        img = images[i, 0]  # (1, H, W) -> (H, W)
        lo, hi = float(img.min()), float(img.max())
        ax.imshow(img, cmap="gray_r", vmin=lo, vmax=hi if hi > lo else lo + 1.0, interpolation="nearest")
        title = f"true {int(labels[i])} → pred {int(preds[i])}"
        if indices is not None:
            title = f"#{int(np.asarray(indices).reshape(-1)[i])}\n{title}"
        ax.set_title(title, fontsize=8, color="darkred")
    fig.tight_layout(pad=0.4)
    _save(fig, path)


def plot_rejection(curve: dict, figures: dict, path) -> None:
    """Test error among accepted digits (%) against the share rejected (%), from a
    ``rejection.rejection_curve``; the points of ``figures`` (``rejection.rejection_figures``:
    key "reject_for_0.5%_error" -> share rejected) are marked and labelled."""
    rejected, error = 100.0 * np.asarray(curve["rejected"]), 100.0 * np.asarray(curve["error"])
    if rejected.ndim != 1 or rejected.shape != error.shape or rejected.size < 2:
        raise Lenet5Error(f"curve: expected 'rejected' and 'error' of one length >= 2, got {rejected.shape} "
                          f"and {error.shape}")
    marks = [(float(k.split("_")[2].rstrip("%")), 100.0 * v) for k, v in figures.items()
             if k.startswith("reject_for_")]  # "reject_for_0.5%_error" -> (0.5, % rejected)
    right = max([5.0] + [1.5 * r for _, r in marks])
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.plot(rejected, error, drawstyle="steps-post", lw=1.5, label="test error among accepted digits")
    for (target, r), style in zip(marks, ("--", ":", "-.")):
        ax.plot([r, r, 0], [0, target, target], color="gray", ls=style, lw=1,
                label=f"{target:g} % error: reject {r:.2f} %")
        ax.plot([r], [target], "o", color="C3", ms=4)
    ax.set_xlim(0, min(100.0, right))
    ax.set_ylim(0, max(1e-3, 1.1 * float(error[0])))
    ax.set(xlabel="test digits rejected (%)  —  smallest margins first", ylabel="error among accepted (%)",
           title=f"Error vs rejection (margin of the two best classes), {error[0]:.2f} % with none rejected")
    ax.title.set_fontsize(10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
