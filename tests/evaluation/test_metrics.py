"""Tests of lenet5.evaluation: metrics, confusion data, confident mistakes, and the PNG plots."""

import json

import numpy as np
import pytest
from PIL import Image

from lenet5.errors import Lenet5Error
from lenet5.evaluation.plots import plot_confusion, plot_learning_curves, plot_misclassified
from lenet5.evaluation.metrics import (classification_metrics, confusion_rows, margins, most_confident_mistakes,
                           predictions, write_confusion_csv)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def penalties(preds, margin=1.0):
    """(N, 10) penalties whose argmin is preds[i], beaten by the runner-up by margin[i]."""
    preds = np.asarray(preds)
    margin = np.broadcast_to(np.asarray(margin, dtype=np.float64), preds.shape)
    y = np.full((preds.size, 10), 50.0)
    y[np.arange(preds.size), preds] = 10.0
    runner = (preds + 1) % 10
    y[np.arange(preds.size), runner] = 10.0 + margin
    return y


def assert_png(path, min_w=50, min_h=50):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    with Image.open(path) as im:
        im.load()
        assert im.format == "PNG"
        assert im.size[0] >= min_w and im.size[1] >= min_h
        return im.size


# ---------------------------------------------------------------- report


def test_metrics_hand_made_example():
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 9])
    preds = np.array([0, 1, 1, 1, 2, 0, 3, 9])  # two errors: 0->1 and 2->0
    m = classification_metrics(penalties(preds), labels, loss=np.float32(0.123456789))
    assert m["n"] == 8 and m["errors"] == 2
    assert m["accuracy"] == 0.75 and m["error_rate"] == 0.25
    assert m["mean_loss"] == pytest.approx(0.123457, abs=1e-9)
    conf = np.zeros((10, 10), int)
    for t, p in zip(labels, preds):
        conf[t, p] += 1
    assert m["confusion"] == conf.tolist()
    assert m["confusion"][0][1] == 1 and m["confusion"][2][0] == 1  # rows = true, cols = predicted
    assert m["per_class_accuracy"]["0"] == 0.5 and m["per_class_accuracy"]["1"] == 1.0
    assert list(m["per_class_accuracy"]) == [str(d) for d in range(10)]
    # plain Python types all the way down: survives strict JSON
    assert json.loads(json.dumps(m, allow_nan=False)) == m
    assert type(m["errors"]) is int and type(m["accuracy"]) is float
    assert all(type(c) is int for row in m["confusion"] for c in row)


def test_metrics_without_loss_and_rounding():
    labels = np.array([0, 1, 2])
    m = classification_metrics(penalties([0, 1, 0]), labels)
    assert "mean_loss" not in m
    assert m["accuracy"] == 0.666667 and m["error_rate"] == 0.333333


def test_absent_class_is_null_not_zero():
    labels = np.array([3, 3, 5])
    m = classification_metrics(penalties([3, 5, 5]), labels)
    pca = m["per_class_accuracy"]
    assert pca["3"] == 0.5 and pca["5"] == 1.0
    assert pca["0"] is None and pca["7"] is None  # never seen: null, not a misleading 0
    assert json.dumps(pca).count("null") == 8


def test_argmin_is_the_prediction():
    y = np.array([[5.0, 1.0, 3.0] + [9.0] * 7, [2.0] * 10])
    assert predictions(y).tolist() == [1, 0]  # smallest penalty wins; ties go to the lower digit


@pytest.mark.parametrize("y, labels, loss, match", [
    (np.zeros((3, 9)), [0, 1, 2], None, "y: expected"),
    (np.zeros((3, 10)), [0, 1], None, "labels: expected 3"),
    (np.zeros((2, 10)), [0, 10], None, "0..9"),
    (np.zeros((2, 10)), [0.0, 1.0], None, "integer"),
    (np.array([[np.nan] * 10]), [0], None, "row 0"),
    (np.zeros((0, 10)), np.zeros(0, int), None, "at least one"),
    (np.zeros((1, 10)), [0], float("nan"), "loss"),
])
def test_metrics_bad_input(y, labels, loss, match):
    with pytest.raises(Lenet5Error, match=match) as e:
        classification_metrics(y, labels, loss)
    assert "\n" not in str(e.value)


def test_confusion_rows_and_csv(tmp_path):
    labels, preds = np.array([7, 2, 1], np.uint8), np.array([7, 3, 1])
    rows = confusion_rows(preds, labels)
    assert rows == [{"actual": 7, "predicted": 7}, {"actual": 2, "predicted": 3}, {"actual": 1, "predicted": 1}]
    assert all(type(v) is int for r in rows for v in r.values())
    path = tmp_path / "plots" / "confusion.csv"
    write_confusion_csv(path, preds, labels)
    assert path.read_text() == "actual,predicted\n7,7\n2,3\n1,1\n"
    assert [p.name for p in path.parent.iterdir()] == ["confusion.csv"]  # no temp file left
    with pytest.raises(Lenet5Error, match="pred"):
        confusion_rows([1, 2], [1])


def test_most_confident_mistakes_order():
    labels = np.array([0, 1, 2, 3, 4, 5, 6])
    preds = np.array([0, 7, 2, 8, 9, 5, 1])  # wrong at 1, 3, 4, 6
    margin = np.array([9.0, 0.5, 8.0, 3.0, 1.5, 7.0, 3.0])
    y = penalties(preds, margin)
    np.testing.assert_allclose(margins(y), margin)
    idx = most_confident_mistakes(y, labels, k=10)
    assert idx.tolist() == [3, 6, 4, 1]  # margins 3, 3 (tie keeps input order), 1.5, 0.5
    assert idx.dtype == np.int64
    assert most_confident_mistakes(y, labels, k=2).tolist() == [3, 6]
    assert most_confident_mistakes(y, labels, k=0).size == 0
    assert most_confident_mistakes(penalties(labels), labels, k=5).size == 0  # no mistakes
    with pytest.raises(Lenet5Error, match="k:"):
        most_confident_mistakes(y, labels, k=-1)


# ---------------------------------------------------------------- plots


def log_rows(n=4):
    return [{"epoch": e, "train_loss": 1.0 / e, "train_error": 0.05 / e, "test_error": 0.03 / e + 0.008,
             "lr": 5e-4 if e < 3 else 2e-4} for e in range(1, n + 1)]


def test_plot_learning_curves(tmp_path):
    path = tmp_path / "curves.png"
    w, h = assert_png_after(plot_learning_curves, log_rows(), path)
    assert w > h  # two panels side by side
    rows = log_rows(2)
    rows[0]["train_error"] = 0.0  # a zero error must not break the log scale
    plot_learning_curves(rows, tmp_path / "zero.png")
    assert_png(tmp_path / "zero.png")
    plot_learning_curves([], tmp_path / "empty.png")
    assert_png(tmp_path / "empty.png")
    with pytest.raises(Lenet5Error, match="test_error"):
        plot_learning_curves([{"epoch": 1, "train_loss": 1.0}], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def assert_png_after(fn, *args):
    import matplotlib.pyplot as plt

    fn(*args)
    assert plt.get_fignums() == []  # the figure was closed
    return assert_png(args[-1])


def test_plot_confusion(tmp_path):
    conf = np.diag(np.full(10, 980))
    conf[4, 9], conf[7, 2] = 6, 1
    assert_png_after(plot_confusion, conf, tmp_path / "confusion.png")
    assert_png_after(plot_confusion, np.zeros((10, 10), int), tmp_path / "zero.png")
    with pytest.raises(Lenet5Error, match="confusion"):
        plot_confusion(np.zeros((9, 10)), tmp_path / "bad.png")


def test_plot_misclassified(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.uniform(-0.1, 1.175, size=(13, 1, 32, 32))
    images[0] = 0.5  # a flat image must not divide by zero
    w, h = assert_png_after(plot_misclassified, images, np.arange(13) % 10, (np.arange(13) + 1) % 10,
                            tmp_path / "errors.png")
    assert w > h  # 10 columns, 2 rows
    assert_png_after(plot_misclassified, images[:3], [1, 2, 3], [4, 5, 6], tmp_path / "three.png")
    with pytest.raises(Lenet5Error, match="labels/preds"):
        plot_misclassified(images, [1], [2], tmp_path / "bad.png")


def figure_texts(monkeypatch):
    """Record every text drawn on the figures the plots save (titles, legends, annotations, ticks)."""
    import matplotlib.pyplot as plt

    from lenet5.evaluation import plots

    texts = []

    def record(fig, path):
        fig.canvas.draw()
        texts.extend(t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text")) if t.get_text())
        plt.close(fig)
    monkeypatch.setattr(plots, "_save", record)
    return texts


def test_gallery_titles_carry_test_set_indices(monkeypatch):
    texts = figure_texts(monkeypatch)
    plot_misclassified(np.zeros((2, 1, 32, 32)), [4, 7], [9, 1], "unused.png", indices=np.array([1234, 5]))
    assert "#1234\ntrue 4 → pred 9" in texts and "#5\ntrue 7 → pred 1" in texts, texts
    with pytest.raises(Lenet5Error, match="indices"):
        plot_misclassified(np.zeros((2, 1, 32, 32)), [4, 7], [9, 1], "unused.png", indices=[3])


def test_learning_curves_label_the_final_error_and_the_distorted_digits(monkeypatch):
    texts = figure_texts(monkeypatch)
    plot_learning_curves(log_rows(), "unused.png")
    assert "final test 1.55 %" in texts  # 0.03 / 4 + 0.008 = 1.55 % at the last epoch
    assert "train (on the fly, distorted digits)" in texts
    rows = [dict(r, test_error=0.0067, train_error=0.009) for r in log_rows()]
    texts.clear()
    plot_learning_curves(rows, "unused.png", distorted=False)
    assert "train (on the fly)" in texts and "final test 0.67 %" in texts
    assert {"0.5", "0.6", "0.7", "0.8", "1"} <= set(texts), texts  # y ticks readable where the error lies


def test_plot_misclassified_empty(tmp_path):
    path = tmp_path / "errors.png"
    assert_png_after(plot_misclassified, np.zeros((0, 1, 32, 32)), np.zeros(0, int), np.zeros(0, int), path)


