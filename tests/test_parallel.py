"""Data parallelism over threads gives the single-thread results, in a fixed chunking."""

import numpy as np
import pytest

from lenet5 import LeNet5
from lenet5.parallel import MIN_CHUNK, spans, split_map


@pytest.mark.parametrize("threads, n", [(1, 100), (2, 100), (3, 200), (2, MIN_CHUNK), (8, 70), (4, 0)])
def test_spans_cover_the_batch_in_order_with_chunks_worth_a_thread(threads, n):
    pieces = spans(threads, n)
    assert pieces[0][0] == 0 and pieces[-1][1] == n
    assert all(a < b or n == 0 for a, b in pieces) and all(b == c for (_, b), (c, _) in zip(pieces, pieces[1:]))
    assert len(pieces) <= max(1, threads)
    if len(pieces) > 1:
        assert min(b - a for a, b in pieces) >= MIN_CHUNK // 2 and n // len(pieces) >= MIN_CHUNK


def test_split_map_weights_are_the_chunk_shares():
    parts = split_map(2, 4 * MIN_CHUNK, lambda a, b: (a, b))
    assert [r for _, r in parts] == [(0, 2 * MIN_CHUNK), (2 * MIN_CHUNK, 4 * MIN_CHUNK)]
    assert sum(w for w, _ in parts) == pytest.approx(1.0)


def test_threads_give_the_single_thread_loss_gradients_outputs_and_curvature():
    rng = np.random.default_rng(0)
    n = 3 * MIN_CHUNK + 5
    x = rng.uniform(-0.1, 1.175, size=(n, 1, 32, 32))
    labels = rng.integers(0, 10, size=n)
    one, three = LeNet5(seed=1, dtype="float64", threads=1), LeNet5(seed=1, dtype="float64", threads=3)
    for criterion in ("mse", "map"):
        l1, g1, y1 = one.loss_grads_and_outputs(x, labels, criterion, 0.1)
        l3, g3, y3 = three.loss_grads_and_outputs(x, labels, criterion, 0.1)
        assert l3 == pytest.approx(l1, rel=1e-12)
        assert np.array_equal(y1, y3)
        for k in g1:
            np.testing.assert_allclose(g3[k], g1[k], rtol=1e-10, atol=1e-14)
    h1, h3 = one.curvature(x), three.curvature(x)
    for k in h1:
        np.testing.assert_allclose(h3[k], h1[k], rtol=1e-10, atol=1e-16)
    assert np.array_equal(one.forward(x), three.forward(x))
