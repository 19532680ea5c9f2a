"""Tests of lenet5.training.sdlm and LeNet5.curvature: the Gauss-Newton diagonal, the eta schedule, the update.

The curvature is checked against reference.py's per-pattern loops of Appendix C (eqs. 23-27,
d2E/dx^2 = 2 at F6's outputs) averaged over the batch, in float64. Training: Table I survives 200
updates, and SDLM overfits a fixed batch of 32 digits (the first 32 MNIST training digits when
../shared/mnist or MNIST_MIRROR has them, random blobs otherwise).
"""

import gzip

import numpy as np
import pytest

from conftest import MNIST_DIR
from lenet5.model import LeNet5
from lenet5.nn.architecture import PARAM_SHAPES
from lenet5.training.sdlm import PAPER_SCHEDULE, eta_for_epoch, sdlm_update, step_sizes, zero_velocity
from reference import c3_mask as paper_mask
from reference import lively_params, network_curvature



# ---------------------------------------------------------------- curvature
@pytest.mark.parametrize("kind", ["paper_init", "lively"])
def test_curvature_is_mean_of_reference_per_pattern_curvature(kind):
    rng = np.random.default_rng(30)
    net = LeNet5(seed=2, dtype="float64") if kind == "paper_init" else LeNet5.from_params(lively_params(rng))
    x = rng.uniform(-0.1, 1.175, size=(3, 1, 32, 32))
    h = net.curvature(x)
    assert list(h) == list(PARAM_SHAPES)
    refs = [network_curvature(net.params, net.rbf_centres, x[n]) for n in range(3)]
    for k in PARAM_SHAPES:
        ref = np.mean([r[k] for r in refs], axis=0)
        assert h[k].shape == PARAM_SHAPES[k] and h[k].dtype == np.float64
        np.testing.assert_allclose(h[k], ref, rtol=1e-8, atol=1e-14 * np.abs(ref).max(), err_msg=k)
        assert h[k].min() >= 0, k
    assert not np.any(h["C3.weight"][paper_mask() == 0])  # no connection, no curvature
    assert np.all(h["C3.weight"][paper_mask() == 1] > 0)


def test_curvature_is_non_negative_and_finite_in_float32_and_float64():
    rng = np.random.default_rng(31)
    x = rng.normal(scale=2.0, size=(5, 1, 32, 32))
    for net in (LeNet5(seed=3, dtype="float32"), LeNet5.from_params(lively_params(rng))):
        for k, v in net.curvature(x).items():
            assert v.dtype == net.dtype and np.all(np.isfinite(v)) and v.min() >= 0, k
    # F6.bias: x = 1 and d2E/dx^2 = 2, so h = 2 f'(a)^2 <= 2 (A S)^2, the value at a = 0
    h = LeNet5(seed=3, dtype="float64").curvature(x)["F6.bias"]
    assert np.all(h <= 2 * (1.7159 * 2 / 3) ** 2 + 1e-12) and np.all(h > 2.6)  # init: a ~ 0


# ---------------------------------------------------------------- schedule and steps
def test_eta_follows_the_paper_schedule_times_lr_scale():
    expected = {e: 0.0005 for e in (1, 2)} | {e: 0.0002 for e in (3, 4, 5)} | {e: 0.0001 for e in (6, 7, 8)}
    expected |= {e: 0.00005 for e in (9, 10, 11, 12)} | {e: 0.00001 for e in range(13, 31)}
    for epoch, eta in expected.items():
        assert eta_for_epoch(epoch) == pytest.approx(eta, rel=1e-15)
        assert eta_for_epoch(epoch, lr_scale=50.0) == pytest.approx(50.0 * eta, rel=1e-15)
    assert PAPER_SCHEDULE[0] == (1, 0.0005)
    for bad in (0, -1):
        with pytest.raises(ValueError):
            eta_for_epoch(bad)


def test_start_factor_damps_only_the_first_epochs():
    for epoch in range(1, 21):
        damped = eta_for_epoch(epoch, 100.0, start_epochs=2, start_factor=0.2)
        plain = eta_for_epoch(epoch, 100.0)
        assert damped == pytest.approx(plain * (0.2 if epoch <= 2 else 1.0), rel=1e-15)
    assert eta_for_epoch(1, 20.0, start_epochs=0, start_factor=0.2) == pytest.approx(0.01)  # 0 epochs: off
    assert eta_for_epoch(5, 20.0, start_epochs=5, start_factor=0.5) == pytest.approx(0.5 * 20 * 0.0002)


def test_step_sizes_are_eta_over_mu_plus_h():
    h = {"a": np.array([0.0, 0.5, 7.1]), "b": np.array([[0.011]], dtype=np.float32)}
    eps = step_sizes(h, eta=0.001, mu=0.02)
    assert list(eps) == ["a", "b"] and eps["b"].dtype == np.float32 and eps["b"].shape == (1, 1)
    np.testing.assert_allclose(eps["a"], [0.001 / 0.02, 0.001 / 0.52, 0.001 / 7.12], rtol=1e-15)
    np.testing.assert_allclose(eps["b"], [[0.001 / 0.031]], rtol=1e-6)


def test_sdlm_update_plain_and_with_momentum():
    w = {"a": np.array([1.0, -2.0]), "b": np.array([[0.5]])}
    g1 = {"a": np.array([0.5, 1.0]), "b": np.array([[-2.0]])}
    g2 = {"a": np.array([-1.0, 0.25]), "b": np.array([[4.0]])}
    eps = {"a": np.array([0.1, 0.2]), "b": np.array([[0.05]])}
    plain = {k: v.copy() for k, v in w.items()}
    arrays = dict(plain)
    sdlm_update(plain, g1, eps)
    assert all(plain[k] is arrays[k] for k in plain)  # updated in place
    np.testing.assert_allclose(plain["a"], [1.0 - 0.05, -2.0 - 0.2], rtol=1e-15)
    np.testing.assert_allclose(plain["b"], [[0.5 + 0.1]], rtol=1e-15)
    mom, v = {k: a.copy() for k, a in w.items()}, zero_velocity(w)
    assert all(np.array_equal(v[k], np.zeros_like(w[k])) for k in w)
    sdlm_update(mom, g1, eps, v, momentum=0.9)  # v1 = -eps g1; w1 = w0 + v1
    np.testing.assert_allclose(mom["a"], plain["a"], rtol=1e-15)
    sdlm_update(mom, g2, eps, v, momentum=0.9)  # v2 = 0.9 v1 - eps g2; w2 = w1 + v2
    v2 = {k: 0.9 * (-eps[k] * g1[k]) - eps[k] * g2[k] for k in w}
    for k in w:
        np.testing.assert_allclose(v[k], v2[k], rtol=1e-15)
        np.testing.assert_allclose(mom[k], w[k] - eps[k] * g1[k] + v2[k], rtol=1e-15)


# ---------------------------------------------------------------- training
def test_table_i_holds_after_200_sdlm_updates():
    rng = np.random.default_rng(26)
    net = LeNet5(seed=6, dtype="float32")
    x, labels = rng.uniform(-0.1, 1.175, size=(4, 1, 32, 32)).astype(np.float32), np.array([1, 4, 7, 9])
    start = net.params["C3.weight"].copy()
    steps, velocity = step_sizes(net.curvature(x), 0.0005, 0.02), zero_velocity(net.params)
    for i in range(200):
        criterion = "mse" if i % 2 else "map"
        _, grads = net.loss_and_grads(x, labels, criterion)
        sdlm_update(net.params, grads, steps, velocity, momentum=0.5 if i >= 100 else 0.0)
    w = net.params["C3.weight"]
    assert np.all(w[paper_mask() == 0] == 0)
    assert np.all(w[paper_mask() == 1] != start[paper_mask() == 1])


def first_training_digits(n):
    """(x ``(n, 1, 32, 32)`` float32, labels) from MNIST's training files, or None when absent."""
    img, lab = MNIST_DIR / "train-images-idx3-ubyte.gz", MNIST_DIR / "train-labels-idx1-ubyte.gz"
    if not (img.is_file() and lab.is_file()):
        return None
    with gzip.open(img) as f:
        raw = np.frombuffer(f.read(16 + n * 784), dtype=np.uint8)
    with gzip.open(lab) as f:
        lab_raw = np.frombuffer(f.read(8 + n), dtype=np.uint8)
    assert int.from_bytes(raw[:4].tobytes(), "big") == 2051  # IDX magic numbers: images, labels
    assert int.from_bytes(lab_raw[:4].tobytes(), "big") == 2049
    x = np.full((n, 1, 32, 32), -0.1, dtype=np.float32)  # pad 2 pixels of background
    x[:, 0, 2:30, 2:30] = -0.1 + 1.275 * raw[16:].reshape(n, 28, 28) / 255.0  # (n*784,) -> (n, 28, 28)
    return x, lab_raw[8:].astype(np.int64)


def smooth_digits(rng, n):
    """Random blurred blobs (about 20 % ink) in a 22x22 box, with random labels."""
    z = rng.normal(size=(n, 26, 26))
    for _ in range(2):  # 3-tap box blur on each axis: (n, 26, 26) -> (n, 22, 22)
        z = (z[:, :-2] + z[:, 1:-1] + z[:, 2:]) / 3
        z = (z[:, :, :-2] + z[:, :, 1:-1] + z[:, :, 2:]) / 3
    ink = np.clip((z - np.quantile(z, 0.8, axis=(1, 2), keepdims=True)) * 8, 0, 1)
    x = np.full((n, 1, 32, 32), -0.1, dtype=np.float32)
    x[:, 0, 5:27, 5:27] += 1.275 * ink
    return x, rng.integers(0, 10, size=n)


@pytest.mark.slow
def test_sdlm_overfits_a_fixed_batch_of_32_digits():
    """Loss falls by > 90 % within 300 plain SDLM steps (float32, mu = 0.02) on one batch.

    The curvature is re-estimated before every step on 8 of the 32 patterns (a sample, like the
    paper's 500); eta * lr_scale = 0.0005 * 2. From the paper's init the curvature of most weights
    is ~1e-6, so each step is about eta * lr_scale / mu. Measured on this batch: re-estimated every
    step, lr_scale 10 stalls at a loss of 45 and lr_scale 50 climbs to ~300; kept for 5-20 steps,
    even lr_scale 1-5 climbs to 140-250 (saturated units).
    """
    x, labels = first_training_digits(32) or smooth_digits(np.random.default_rng(27), 32)
    net = LeNet5(seed=0, dtype="float32")
    first = None
    for _ in range(300):
        steps = step_sizes(net.curvature(x[:8]), 0.0005 * 2.0, 0.02)
        loss, grads = net.loss_and_grads(x, labels)
        first = loss if first is None else first
        if loss < 0.1 * first:
            break
        sdlm_update(net.params, grads, steps)
    assert loss < 0.1 * first, f"loss {first:.2f} -> {loss:.2f}"
    assert (net.predict(x) == labels).mean() >= 0.9
