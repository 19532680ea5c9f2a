"""Tests of lenet5.store.trainlog: the per-epoch log round-trips exactly and refuses malformed files."""

import pytest

from lenet5.errors import Lenet5Error
from lenet5.store.trainlog import read_log_csv, write_log_csv


def log_rows(n=4):
    return [{"epoch": e, "train_loss": 1.0 / e, "train_error": 0.05 / e, "test_error": 0.03 / e + 0.008,
             "lr": 5e-4 if e < 3 else 2e-4} for e in range(1, n + 1)]


def test_log_csv_round_trip(tmp_path):
    path = tmp_path / "train_log.csv"
    rows = log_rows(3)
    rows[1]["train_loss"] = 0.1 + 0.2  # needs full precision to round-trip
    write_log_csv(path, rows)
    text = path.read_text()
    assert text.splitlines()[0] == "epoch,train_loss,train_error,test_error,lr"
    assert text.count("epoch") == 1 and len(text.splitlines()) == 4
    back = read_log_csv(path)
    assert back == rows
    assert all(type(r["epoch"]) is int and type(r["lr"]) is float for r in back)
    assert [p.name for p in tmp_path.iterdir()] == ["train_log.csv"]


def test_log_csv_header_only_and_blank_lines(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch,train_loss,train_error,test_error,lr\n\n")
    assert read_log_csv(path) == []


@pytest.mark.parametrize("text, match", [
    ("", "line 1: expected the header"),
    ("epoch,loss\n1,2\n", "line 1: expected the header"),
    ("epoch,train_loss,train_error,test_error,lr\n1,0.5,0.1,0.1,1e-3\n2,0.4,0.1\n", "line 3: expected 5"),
    ("epoch,train_loss,train_error,test_error,lr\n1,0.5,abc,0.1,1e-3\n", "line 2: expected numbers"),
    ("epoch,train_loss,train_error,test_error,lr\n1.5,0.5,0.1,0.1,1e-3\n", "line 2"),
])
def test_log_csv_malformed(tmp_path, text, match):
    path = tmp_path / "log.csv"
    path.write_text(text)
    with pytest.raises(Lenet5Error, match=match) as e:
        read_log_csv(path)
    assert str(path) in str(e.value)


def test_log_csv_missing_file_and_bad_row(tmp_path):
    with pytest.raises(Lenet5Error, match="cannot read"):
        read_log_csv(tmp_path / "nope.csv")
    with pytest.raises(Lenet5Error, match="missing lr"):
        write_log_csv(tmp_path / "log.csv", [{k: 1 for k in ("epoch", "train_loss", "train_error", "test_error")}])
    assert not (tmp_path / "log.csv").exists()
