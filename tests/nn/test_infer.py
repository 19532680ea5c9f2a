"""Tests of lenet5.nn.infer: the lean inference pass against the training forward pass and the loops.

``LeNet5.forward`` runs ``infer`` (constants folded, sub-batches, no caches); ``nn/network.forward`` is
the cached forward pass the gradients are built on. The two are written differently and must agree
to rounding in float64 on every sub-batch boundary, and the loop network of reference.py checks both.
"""

import numpy as np
import pytest

from lenet5.nn.infer import fold, infer
from lenet5.nn.window import window_weights
from lenet5.parallel.chunks import PIECE as SUB_BATCH
from lenet5.nn.layers import SQUASH_A, SQUASH_S
from lenet5.model import LeNet5
from lenet5.nn import network
from reference import lively_params, network_forward


def lively_net(seed, dtype="float64", threads=1):
    net = LeNet5.from_params(lively_params(np.random.default_rng(seed)))
    net = LeNet5.from_params({k: v.astype(dtype) for k, v in net.params.items()})
    net.threads = threads
    return net


@pytest.mark.parametrize("n", [1, 2, SUB_BATCH - 1, SUB_BATCH, 2 * SUB_BATCH + 3])
@pytest.mark.parametrize("threads", [1, 2])
def test_inference_pass_equals_training_forward_pass(n, threads):
    net = lively_net(30, threads=threads)
    x = np.random.default_rng(n).uniform(-0.1, 1.175, size=(n, 1, 32, 32))
    y = net.forward(x)
    assert y.shape == (n, 10) and y.dtype == np.float64
    np.testing.assert_allclose(y, network.forward(x, net.params, net.rbf_centres)[0], rtol=1e-12, atol=1e-12)


def test_inference_pass_matches_loop_reference_across_sub_batches():
    net = lively_net(31)
    x = np.random.default_rng(1).uniform(-0.1, 1.175, size=(5, 1, 32, 32))
    y = infer(x, fold(net.params), net.rbf_centres, sub_batch=2)  # sub-batches of 2, 2 and 1
    for i in range(5):
        np.testing.assert_allclose(y[i], network_forward(net.params, net.rbf_centres, x[i]), rtol=1e-11)


def test_sub_batch_size_does_not_change_results():
    net = lively_net(32)
    x = np.random.default_rng(2).uniform(-0.1, 1.175, size=(40, 1, 32, 32))
    f = fold(net.params)
    ref = infer(x, f, net.rbf_centres, sub_batch=40)
    for sb in (1, 7, 16):
        np.testing.assert_allclose(infer(x, f, net.rbf_centres, sub_batch=sb), ref, rtol=1e-13, atol=1e-13)


def test_fold_moves_the_squash_constants_into_the_weights():
    net = lively_net(33)
    f, p = fold(net.params), net.params
    np.testing.assert_allclose(f["C1"], window_weights(SQUASH_S * p["C1.weight"]))
    np.testing.assert_allclose(f["C3"], window_weights(SQUASH_S * SQUASH_A * p["C3.weight"]))
    np.testing.assert_allclose(f["C5"], SQUASH_S * SQUASH_A * p["C5.weight"].reshape(120, 400))
    np.testing.assert_allclose(f["S4"][:, 0], SQUASH_S * SQUASH_A * p["S4.coef"])
    np.testing.assert_allclose(f["F6.b"][:, 0], SQUASH_S * p["F6.bias"])
    np.testing.assert_allclose(f["C3.b"][:, 0], SQUASH_S * np.repeat(p["C3.bias"], 4))
    assert all(v.dtype == np.float64 and v.flags.c_contiguous for v in f.values())
    p["C1.weight"][:] = 0  # folded weights are copies: training updates never leak into them
    assert np.any(f["C1"] != 0)


def test_float32_inference_agrees_with_float64():
    x = np.random.default_rng(3).uniform(-0.1, 1.175, size=(70, 1, 32, 32))
    y64 = lively_net(34).forward(x)
    y32 = lively_net(34, "float32", threads=2).forward(x)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(3, 32, 32), (2, 1, 28, 28), (2, 3, 32, 32)])
def test_forward_refuses_other_shapes(shape):
    with pytest.raises(ValueError, match=r"\(N, 1, 32, 32\)"):
        LeNet5(seed=0).forward(np.zeros(shape))
