"""Tests of lenet5.training.batches: the same batches, bit for bit, and the same random numbers drawn,
as cutting the order into mini-batches and distorting each with distort_batch and keep_originals;
and the distortions drawn for a batch resample to the same bytes in any chunks."""

import dataclasses

import numpy as np
import pytest

from conftest import committed_params
from lenet5.pipeline.config import params_from_dict
from lenet5.training.distort import distort_batch, keep_originals
from lenet5.nn.warp import warp_except
from lenet5.training.batches import augment, batches, draw

DISTORT = params_from_dict(committed_params()).distort


def by_hand(x, rng, d):
    if not d.enabled:
        return x
    return keep_originals(distort_batch(x, rng, d.translate, d.scale, d.squeeze, d.shear), x, rng, d.originals)


def sequential(x, order, bs, rng, distort):
    return [(order[i:i + bs], by_hand(x[order[i:i + bs]], rng, distort)) for i in range(0, len(order), bs)]


@pytest.mark.parametrize("changes", [{}, {"originals": 0.0}, {"translate": 0.0, "scale": 0.0, "squeeze": 0.0,
                                                                "shear": 0.0}, {"enabled": False}])
@pytest.mark.parametrize("n, bs", [(100, 32), (64, 32), (5, 32), (0, 32)])
def test_batches_equal_augmenting_each_batch_in_turn(changes, n, bs):
    distort = dataclasses.replace(DISTORT, **changes)
    x = np.random.default_rng(0).uniform(-0.1, 1.175, size=(120, 1, 32, 32)).astype(np.float32)  # (N, 1, 32, 32)
    order = np.random.default_rng(1).permutation(120)[:n]
    r1, r2 = np.random.default_rng(7), np.random.default_rng(7)
    want = sequential(x, order, bs, r1, distort)
    got = list(batches(x, order, bs, r2, distort))
    assert len(got) == len(want) == -(-n // bs)
    for (i1, x1), (i2, x2, (mats, keep)) in zip(want, got):
        assert np.array_equal(i1, i2) and np.array_equal(x2, x[i2])  # the images come undistorted
        x2 = x2 if mats is None else warp_except(x2, mats, keep)
        assert x1.dtype == x2.dtype and x1.tobytes() == x2.tobytes()
    assert r1.bit_generator.state == r2.bit_generator.state  # the same numbers drawn, no more
    if distort.enabled and distort.translate and n:
        assert not np.array_equal(want[0][1], x[order[:bs]])  # the distortions really ran


@pytest.mark.parametrize("cut", [1, 5, 16, 31])
def test_a_batch_resampled_in_two_chunks_gives_the_same_bytes(cut):
    """What lets each process resample its own chunk: every image is resampled on its own."""
    x = np.random.default_rng(0).uniform(-0.1, 1.175, size=(32, 1, 32, 32)).astype(np.float32)  # (N, 1, 32, 32)
    mats, keep = draw(32, np.random.default_rng(3), DISTORT)
    assert keep is not None and 0 < keep.sum() < 32  # seed chosen so that both kinds occur
    whole = warp_except(x, mats, keep)
    parts = [warp_except(x[a:b], mats[a:b], keep[a:b]) for a, b in ((0, cut), (cut, 32))]
    assert np.concatenate(parts).tobytes() == whole.tobytes()
    assert augment(x, np.random.default_rng(3), DISTORT).tobytes() == whole.tobytes()


def test_kept_images_are_not_resampled_but_their_matrices_are_still_checked():
    """``warp_except`` resamples only the images not kept (each on its own, so the bytes are those of
    resampling all and putting the kept ones back) and refuses a bad matrix even for a kept image."""
    from lenet5.errors import Lenet5Error
    from lenet5.nn.warp import affine_warp

    x = np.random.default_rng(1).uniform(-0.1, 1.175, size=(32, 1, 32, 32)).astype(np.float32)  # (N, 1, 32, 32)
    mats, keep = draw(32, np.random.default_rng(3), DISTORT)
    old = affine_warp(x, mats)
    old[keep] = x[keep]
    assert warp_except(x, mats, keep).tobytes() == old.tobytes()
    assert warp_except(x, mats, np.ones(32, bool)).tobytes() == x.tobytes()
    bad = mats.copy()
    bad[np.flatnonzero(keep)[0]] = np.nan
    with pytest.raises(Lenet5Error, match="finite"):
        warp_except(x, bad, keep)
    with pytest.raises(Lenet5Error, match=r"keep must be \(32,\) booleans, got \(31,\)"):
        warp_except(x, mats, np.ones(31, bool))  # all kept: nothing to resample, still refused
