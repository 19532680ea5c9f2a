"""The chunking of a batch and the combination of per-chunk means."""

import numpy as np
import pytest

from lenet5.parallel.chunks import combine, spans, weighted_sum


@pytest.mark.parametrize("threads, n, min_chunk", [(1, 100, 16), (2, 100, 16), (3, 200, 32), (2, 32, 16),
                                                   (2, 31, 16), (8, 70, 16), (4, 0, 16)])
def test_spans_cover_the_batch_in_order_with_chunks_worth_a_process(threads, n, min_chunk):
    pieces = spans(threads, n, min_chunk)
    assert pieces[0][0] == 0 and pieces[-1][1] == n
    assert all(a < b or n == 0 for a, b in pieces) and all(b == c for (_, b), (c, _) in zip(pieces, pieces[1:]))
    assert len(pieces) <= max(1, threads)
    if len(pieces) > 1:
        assert n // len(pieces) >= min_chunk and max(b - a for a, b in pieces) - min(b - a for a, b in pieces) <= 1
    if n >= threads * min_chunk:
        assert len(pieces) == max(1, threads)


def test_weighted_sum_combines_in_order():
    parts = [(0.25, {"a": np.array([4.0]), "b": np.ones(2)}), (0.75, {"a": np.array([8.0]), "b": np.zeros(2)})]
    out = weighted_sum(parts)
    assert list(out) == ["a", "b"] and out["a"][0] == 7.0 and np.array_equal(out["b"], [0.25, 0.25])
    assert parts[0][1]["a"][0] == 4.0  # inputs untouched


def test_combine_weights_losses_and_gradients_and_stacks_outputs():
    a = (2.0, {"w": np.array([1.0, 2.0])}, np.zeros((1, 10)))
    b = (4.0, {"w": np.array([3.0, 6.0])}, np.ones((3, 10)))
    loss, grads, y = combine([(0.25, a), (0.75, b)])
    assert loss == pytest.approx(3.5) and np.array_equal(grads["w"], [2.5, 5.0])
    assert y.shape == (4, 10) and y[0].sum() == 0 and y[1:].min() == 1
    assert combine([(1.0, a)]) is a  # one chunk: returned as it is
    assert combine([(0.5, (0.0, {"h": np.ones(2)}, None)), (0.5, (0.0, {"h": np.zeros(2)}, None))])[2] is None
