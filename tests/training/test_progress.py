"""Tests of what ``training/loop.py`` tells a person while it trains: the line after each epoch (the
learning rate as ``lr``, the time left for the whole run) and the rough durations it prints.

One tiny run of two epochs on random digits (32 training, 16 test images) takes a fraction of a second.
"""

import numpy as np
import pytest

from conftest import committed_params
from lenet5.pipeline.config import params_from_dict
from lenet5.training.loop import _duration, fit


def test_the_epoch_line_names_the_learning_rate_and_the_time_left(tmp_path):
    p = params_from_dict(committed_params({"train.epochs": 2, "train.batch_size": 16, "train.hessian_samples": 16,
                                           "distort.enabled": False}))
    rng = np.random.default_rng(0)
    data = []
    for n in (32, 16):
        data += [rng.uniform(-0.1, 1.175, size=(n, 1, 32, 32)).astype(np.float32), rng.integers(0, 10, size=n)]
    messages = []
    _, rows = fit(*data, p.lr_scale, p.train, p.distort, tmp_path / "last.npz", progress=False,
                  echo=messages.append)
    lines = [m for m in messages if m.startswith("epoch ")]
    assert len(lines) == 2 and " eta " not in lines[0]
    assert f"  lr {rows[0]['lr']:.2e}  " in lines[0]
    assert lines[0].endswith(" left") and "~" in lines[0]  # one epoch to go
    assert not lines[1].endswith(" left")  # the last epoch: nothing left


@pytest.mark.parametrize("seconds, text", [(0.4, "0 s"), (59.4, "59 s"), (61, "1 min"), (3569, "59 min"),
                                           (3599, "1 h 00 min"), (7500, "2 h 05 min")])
def test_durations_read_as_a_person_would(seconds, text):
    assert _duration(seconds) == text
