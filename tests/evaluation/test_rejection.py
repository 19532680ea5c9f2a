"""Tests of ``evaluation/rejection.py`` on hand-made penalties whose margins and mistakes are known."""

import json

import numpy as np
import pytest

from lenet5.errors import Lenet5Error
from lenet5.evaluation.plots import plot_rejection
from lenet5.evaluation.rejection import (MAX_JSON_BYTES, read_threshold, reject_for_error, rejection_curve,
                                         rejection_figures)


def penalties(margins, wrong):
    """Penalties ``(N, 10)`` and labels ``(N,)``: image i is read as digit i % 10 with the given margin
    over the runner-up; its label is that digit, or another one where ``wrong[i]``."""
    n = len(margins)
    y = np.full((n, 10), 100.0)
    labels = np.zeros(n, np.int64)
    for i, (m, w) in enumerate(zip(margins, wrong)):
        d = i % 10
        y[i, d], y[i, (d + 1) % 10] = 1.0, 1.0 + m  # (1 + m) - 1 = m exactly for these small integers
        labels[i] = (d + 3) % 10 if w else d
    return y, labels


# ten images with margins 1..10; the ones with margins 1, 2 and 5 are misclassified
Y, LABELS = penalties(range(1, 11), [m in (1, 2, 5) for m in range(1, 11)])


def test_the_curve_lists_every_operating_point():
    c = rejection_curve(Y, LABELS)
    assert c["threshold"].tolist()[:-1] == [0, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert c["threshold"][-1] > 10  # above every margin: rejects all
    assert c["rejected"] == pytest.approx(np.arange(11) / 10)
    assert c["error"] == pytest.approx([3 / 10, 2 / 9, 1 / 8, 1 / 7, 1 / 6, 0, 0, 0, 0, 0, 0])


def test_the_smallest_rejection_that_reaches_a_target():
    c = rejection_curve(Y, LABELS)
    assert reject_for_error(c, 0.15) == (0.2, 3.0)  # reject margins 1 and 2: 1 mistake in 8
    assert reject_for_error(c, 0.0) == (0.5, 6.0)  # reject margins 1-5: no mistake left
    assert reject_for_error(c, 0.3) == (0.0, 0.0)  # already there: reject nothing
    with pytest.raises(Lenet5Error, match="target"):
        reject_for_error(c, 1.5)


def test_equal_margins_are_rejected_together():
    y, labels = penalties([1, 1, 2], [True, False, False])
    c = rejection_curve(y, labels)
    assert c["threshold"].tolist()[:2] == [0, 2] and c["rejected"] == pytest.approx([0, 2 / 3, 1])
    assert c["error"] == pytest.approx([1 / 3, 0, 0])


def test_the_threshold_rejects_exactly_the_margins_below_it():
    rng = np.random.default_rng(0)
    y, labels = rng.uniform(0, 50, size=(500, 10)), rng.integers(0, 10, size=500)
    c = rejection_curve(y, labels)
    two = np.sort(y, axis=1)[:, :2]  # (N, 2)
    m, wrong = two[:, 1] - two[:, 0], y.argmin(axis=1) != labels
    for t, r, e in zip(c["threshold"][::37], c["rejected"][::37], c["error"][::37]):
        kept = m >= t
        assert r == pytest.approx(1 - kept.mean())
        assert e == pytest.approx(wrong[kept].mean() if kept.any() else 0.0)


def test_figures_for_eval_json():
    assert rejection_figures(rejection_curve(Y, LABELS)) == {
        "reject_for_0.5%_error": 0.5, "reject_for_0.1%_error": 0.5, "reject_threshold": 6.0}
    y, labels = penalties(range(1, 1001), [m == 3 for m in range(1, 1001)])  # 1 mistake in 1000
    assert rejection_figures(rejection_curve(y, labels)) == {
        "reject_for_0.5%_error": 0.0, "reject_for_0.1%_error": 0.0, "reject_threshold": 0.0}


def test_bad_penalties_are_refused():
    with pytest.raises(Lenet5Error, match="expected at least one"):
        rejection_curve(np.zeros((0, 10)), np.zeros(0, np.int64))
    with pytest.raises(Lenet5Error, match="shape"):
        rejection_curve(np.zeros((3, 9)), np.zeros(3, np.int64))


def test_read_threshold(tmp_path):
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({"accuracy": 0.99, "reject_threshold": 9.5}))
    assert read_threshold(path) == 9.5
    for bad, fragment in [("[1, 2]", "None"), ('{"reject_threshold": "9"}', "'9'"), ("{", "not a JSON"),
                          ('{"reject_threshold": NaN}', "nan"), ("", "not a JSON")]:
        path.write_text(bad)
        with pytest.raises(Lenet5Error, match=fragment) as e:
            read_threshold(path)
        assert "eval.json" in str(e.value)
    path.write_bytes(b" " * (MAX_JSON_BYTES + 1))
    with pytest.raises(Lenet5Error, match="at most"):
        read_threshold(path)
    with pytest.raises(Lenet5Error, match="no such file"):
        read_threshold(tmp_path / "none.json")


def test_plot_rejection(tmp_path):
    c = rejection_curve(Y, LABELS)
    path = tmp_path / "rejection.png"
    plot_rejection(c, rejection_figures(c), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["rejection.png"]  # no temp file left
    with pytest.raises(Lenet5Error, match="curve"):
        plot_rejection({"rejected": np.zeros(1), "error": np.zeros(1)}, {}, tmp_path / "bad.png")
