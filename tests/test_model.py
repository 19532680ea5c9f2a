"""Tests of lenet5.model (with nn.bitmaps and store.npz): shapes, forward, gradients, init, files, training.

The forward pass and the losses are checked against the per-image loop network of reference.py
(written from the paper, Table I as sets) and the gradients of every parameter tensor against
central finite differences, in float64. Training with SDLM is tested in test_sdlm.py.
"""

import numpy as np
import pytest

from lenet5.nn.bitmaps import rbf_centres
from lenet5.store.npz import DIGEST_KEY, FORMAT, FORMAT_KEY, digest
from lenet5.errors import Lenet5Error
from lenet5.nn.losses import loss_and_dy
from lenet5.model import LeNet5
from lenet5.nn.architecture import PARAM_SHAPES, c3_mask
from reference import TABLE_I_ROWS, c3_inputs, lively_params, map_pattern, mse_pattern, network_forward
from reference import c3_mask as paper_mask

PAPER_SHAPES = {  # §II.B, written out here rather than read from the model
    "C1.weight": (6, 1, 5, 5), "C1.bias": (6,), "S2.coef": (6,), "S2.bias": (6,),
    "C3.weight": (16, 6, 5, 5), "C3.bias": (16,), "S4.coef": (16,), "S4.bias": (16,),
    "C5.weight": (120, 16, 5, 5), "C5.bias": (120,), "F6.weight": (84, 120), "F6.bias": (84,),
}
CRITERIA = [("mse", 0.1), ("map", 0.1), ("map", 1.0)]


def images(rng, n):
    """n random inputs ``(n, 1, 32, 32)`` in the paper's range [-0.1, 1.175]."""
    return rng.uniform(-0.1, 1.175, size=(n, 1, 32, 32))


def gradcheck_net():
    """A float64 net (paper init, seed 1) whose F6 outputs sit near digit 3's code, and 3 patterns.

    With F6.bias = 0.9 * code(3), y_3 is about 0.5 for every pattern, so eq. 9's competitive term
    (q_D = e^{-y_D} / (e^{-j} + sum e^{-y}), 0.4-0.6) is far from 0: the MAP gradient differs from MSE's.
    """
    net = LeNet5(seed=1, dtype="float64")
    rng = np.random.default_rng(0)
    for k in ("C1.bias", "S2.bias", "C3.bias", "S4.bias", "C5.bias"):
        net.params[k] = rng.uniform(-0.1, 0.1, size=net.params[k].shape)
    net.params["F6.bias"] = 0.9 * rbf_centres()[3]
    return net, rng.normal(scale=0.5, size=(3, 1, 32, 32)), np.array([3, 3, 7])


# ---------------------------------------------------------------- structure
def test_sixty_thousand_parameters_counted_from_table_i():
    assert LeNet5(seed=0).num_params() == 60000
    connections = sum(row.count("X") for row in TABLE_I_ROWS)
    assert connections == 60
    explicit = sum(int(np.prod(s)) for k, s in PAPER_SHAPES.items() if k != "C3.weight") + 25 * connections
    assert explicit == 60000


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_param_keys_shapes_and_c3_zero_outside_table_i(dtype):
    assert PARAM_SHAPES == PAPER_SHAPES
    assert np.array_equal(c3_mask()[:, :, 0, 0], paper_mask())
    for seed in range(3):
        net = LeNet5(seed=seed, dtype=dtype)
        assert list(net.params) == list(PAPER_SHAPES)
        for k, v in net.params.items():
            assert v.shape == PAPER_SHAPES[k] and v.dtype == np.dtype(dtype)
        w = net.params["C3.weight"]
        assert np.all(w[paper_mask() == 0] == 0) and np.all(w[paper_mask() == 1] != 0)


def test_rbf_centres_are_distinct_plus_minus_one_codes():
    c = rbf_centres()
    assert c.shape == (10, 84) and c.dtype == np.float64
    assert set(np.unique(c)) == {-1.0, 1.0}
    d = ((c[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)  # (10, 10) squared distances
    assert d[~np.eye(10, dtype=bool)].min() >= 60
    assert rbf_centres("float32").dtype == np.float32
    assert np.array_equal(LeNet5(seed=0, dtype="float64").rbf_centres, c)


# ---------------------------------------------------------------- forward and loss vs the reference
def test_forward_matches_per_image_reference_network():
    rng = np.random.default_rng(20)
    net, x = LeNet5.from_params(lively_params(rng)), images(rng, 3)
    y = net.forward(x)
    assert y.shape == (3, 10)
    for n in range(3):
        np.testing.assert_allclose(y[n], network_forward(net.params, net.rbf_centres, x[n]), rtol=1e-11, atol=0)


def test_predict_is_argmin_of_penalties():
    rng = np.random.default_rng(21)
    net, x = LeNet5.from_params(lively_params(rng)), images(rng, 7)
    pred = net.predict(x, batch_size=3)
    assert pred.shape == (7,)
    assert np.array_equal(pred, net.forward(x).argmin(axis=1))
    y = rng.permuted(np.tile(np.arange(10.0), (7, 1)), axis=1)  # (7, 10) penalties with known winners
    sizes = []

    def fake_map(op, xb):  # serves y chunk by chunk, as forward asks for it
        assert op == "infer"
        sizes.append(len(xb))
        return 0.0, {}, y[sum(sizes) - len(xb):sum(sizes)]

    net._map = fake_map
    assert np.array_equal(net.predict(x, batch_size=3), y.argmin(axis=1)) and sizes == [3, 3, 1]


@pytest.mark.parametrize("criterion,j", CRITERIA)
def test_loss_is_mean_of_reference_per_pattern_losses(criterion, j):
    net, x, labels = gradcheck_net()
    ys = [network_forward(net.params, net.rbf_centres, x[n]) for n in range(3)]
    per = [mse_pattern(y, t) if criterion == "mse" else map_pattern(y, t, j) for y, t in zip(ys, labels)]
    loss, _ = net.loss_and_grads(x, labels, criterion, j)
    assert abs(loss - np.mean(per)) <= 1e-11 * abs(np.mean(per))


# ---------------------------------------------------------------- gradients vs finite differences
def test_gradients_of_every_parameter_match_finite_differences():
    """All three criteria, every tensor: sixth-order central differences of the loss (h = 1e-2).

    The error is relative to each entry, floored at 1e-3 of the tensor's largest checked entry so
    that a near-zero entry, where float64 rounding of the loss dominates, cannot decide alone.
    """
    net, x, labels = gradcheck_net()
    grads = [net.loss_and_grads(x, labels, c, j)[1] for c, j in CRITERIA]
    rng, h = np.random.default_rng(22), 1e-2
    for g in grads:
        assert not np.any(g["C3.weight"][paper_mask() == 0])  # no gradient outside Table I
    for k, w in net.params.items():
        on = paper_mask()[:, :, None, None] if k == "C3.weight" else 1  # (16, 6, 1, 1): Table I
        allowed = np.flatnonzero(np.broadcast_to(on, w.shape))
        picks = allowed if allowed.size <= 16 else rng.choice(allowed, size=20, replace=False)
        num, ana = [], []
        for flat in picks:
            idx = np.unravel_index(flat, w.shape)
            old, f = w[idx], []
            for step in (3, 2, 1, -1, -2, -3):
                w[idx] = old + step * h
                y = net.forward(x)
                f.append(np.array([loss_and_dy(y, labels, c, j)[0] for c, j in CRITERIA]))
            w[idx] = old
            num.append((f[0] - 9 * f[1] + 45 * f[2] - 45 * f[3] + 9 * f[4] - f[5]) / (60 * h))  # (3,)
            ana.append([g[k][idx] for g in grads])
        num, ana = np.array(num), np.array(ana)  # (entries, 3)
        floor = 1e-3 * np.abs(num).max(axis=0)
        err = np.abs(num - ana) / np.maximum(np.maximum(np.abs(num), np.abs(ana)), floor)
        assert err.max() < 1e-6, f"{k}: relative error {err.max(axis=0)} for {CRITERIA}"
    mse_g = grads[0]["F6.bias"]
    for g in grads[1:]:  # the competitive term of eq. 9 must matter in this setting
        assert np.abs(g["F6.bias"] - mse_g).mean() > 0.1 * np.abs(mse_g).mean()


# ---------------------------------------------------------------- initialisation and dtypes
def test_init_is_uniform_within_2_4_over_fan_in():
    fan = {"C1.weight": 25, "S2.coef": 4, "S4.coef": 4, "C5.weight": 400, "F6.weight": 120}
    for dtype in ("float32", "float64"):
        p = LeNet5(seed=3, dtype=dtype).params
        for k, fi in fan.items():
            m = np.abs(p[k]).max()
            assert m <= 2.4 / fi * (1 + 1e-6), k
            if p[k].size >= 100:  # enough draws to fill the range and to average about half of it
                assert m >= 0.95 * 2.4 / fi and 0.4 < np.abs(p[k]).mean() / (2.4 / fi) < 0.6, k
        for out_map, ins in enumerate(c3_inputs()):
            m = np.abs(p["C3.weight"][out_map]).max()
            bound = 2.4 / (25 * len(ins))  # 75, 100 or 150 inputs
            assert 0.9 * bound <= m <= bound * (1 + 1e-6), out_map
        assert all(not np.any(p[k]) for k in p if k.endswith(".bias"))


def test_same_seed_same_net_other_seed_other_net():
    x, labels = images(np.random.default_rng(23), 4), np.array([0, 1, 2, 3])
    a, b, c = LeNet5(seed=7, dtype="float64"), LeNet5(seed=7, dtype="float64"), LeNet5(seed=8, dtype="float64")
    assert all(np.array_equal(a.params[k], b.params[k]) for k in PARAM_SHAPES)
    assert a.loss_and_grads(x, labels)[0] == b.loss_and_grads(x, labels)[0]
    assert all(not np.array_equal(a.params[k], c.params[k]) for k in PARAM_SHAPES if not k.endswith(".bias"))
    assert a.loss_and_grads(x, labels)[0] != c.loss_and_grads(x, labels)[0]


def test_float32_net_agrees_with_float64_net():
    rng = np.random.default_rng(24)
    p64 = lively_params(rng)
    net64, x = LeNet5.from_params(p64), images(rng, 64)
    net32 = LeNet5.from_params({k: v.astype(np.float32) for k, v in p64.items()})
    assert net32.dtype == np.float32 and net32.params["C1.weight"].dtype == np.float32
    y64, y32 = net64.forward(x), net32.forward(x.astype(np.float32))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-3)
    s = np.sort(y64, axis=1)
    clear = s[:, 1] - s[:, 0] > 1e-2  # patterns whose winner is not a near tie: nearly all
    assert clear.sum() >= 60
    assert np.array_equal(net32.predict(x)[clear], net64.predict(x)[clear])


# ---------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_round_trip_is_bitwise(tmp_path, dtype):
    net = LeNet5(seed=4, dtype=dtype)
    net.params["F6.bias"] += np.asarray(0.25, dtype=dtype)
    path = tmp_path / "w.npz"
    net.save(path, extra={"epoch": 3})
    back = LeNet5.load(path)
    assert back.dtype == np.dtype(dtype)
    for k in PARAM_SHAPES:
        assert back.params[k].dtype == np.dtype(dtype) and np.array_equal(back.params[k], net.params[k])
    x = images(np.random.default_rng(25), 2)
    assert np.array_equal(back.forward(x), net.forward(x))


def valid_arrays():
    return {FORMAT_KEY: np.array(FORMAT), **LeNet5(seed=5, dtype="float64").params}


def write_npz(path, arrays, seal=True):
    """``arrays`` as an .npz with (``seal``) the content digest ``save`` adds, so the other checks are reached."""
    if seal and all(a.dtype != object for a in arrays.values()):
        arrays = {**arrays, DIGEST_KEY: np.array(digest(arrays))}
    with open(path, "wb") as f:
        np.savez(f, **arrays)  # np.savez pickles object arrays: the loader must refuse them


def write_bad(path, case):
    """Write a damaged checkpoint of the named kind to ``path``."""
    a = valid_arrays()
    if case == "not_npz":
        return path.write_text("C1.weight = 1\n")
    if case == "truncated":
        write_npz(path, a)
        return path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    if case == "missing_key":
        del a["F6.bias"]
    elif case == "wrong_shape":
        a["C1.weight"] = np.zeros((6, 1, 3, 3))
    elif case == "object_array":
        a["C1.weight"] = np.empty(PARAM_SHAPES["C1.weight"], dtype=object)
        a["C1.weight"][...] = 0.0
    elif case == "nan":
        a["C5.bias"] = np.full(120, np.nan)
    elif case == "no_marker":
        del a[FORMAT_KEY]
    elif case in ("edited", "no_digest"):  # edited after saving; or saved without a digest (older format)
        sealed = {**a, DIGEST_KEY: np.array(digest(a))}
        if case == "edited":
            sealed["F6.weight"] = sealed["F6.weight"] * 0.5
        else:
            del sealed[DIGEST_KEY]
        return write_npz(path, sealed, seal=False)
    elif case == "compressed":
        a[DIGEST_KEY] = np.array(digest(a))
        with open(path, "wb") as f:
            return np.savez_compressed(f, **a)
    write_npz(path, a)


BAD_FILES = ["not_npz", "truncated", "missing_key", "wrong_shape", "object_array", "nan", "no_marker", "edited",
             "no_digest", "compressed"]


@pytest.mark.parametrize("case", BAD_FILES)
def test_load_refuses_bad_files_with_one_line(tmp_path, case):
    write_npz(tmp_path / "good.npz", valid_arrays())
    LeNet5.load(tmp_path / "good.npz")  # the undamaged file loads
    path = tmp_path / f"{case}.npz"
    write_bad(path, case)
    with pytest.raises(Lenet5Error) as info:
        LeNet5.load(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    if case == "object_array":
        assert "no pickled objects" in msg
    if case in ("edited", "no_digest"):
        assert "digest missing or wrong" in msg
    if case == "compressed":
        assert "is compressed" in msg


def test_load_refuses_c3_connections_outside_table_i(tmp_path):
    """A file whose C3.weight uses a connection absent from Table I is not a LeNet-5."""
    net = LeNet5(seed=0, dtype="float64")
    net.params["C3.weight"][0, 5, 2, 2] = 0.1  # map 0 reads S2 maps {0, 1, 2} only
    path = tmp_path / "bad.npz"
    net.save(path)
    with pytest.raises(Lenet5Error, match="outside Table I"):
        LeNet5.load(path)
