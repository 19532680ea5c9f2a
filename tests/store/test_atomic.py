"""Tests of lenet5.store.atomic: only regular files are replaced, and stale temp files are cleaned."""

import os

import pytest

from lenet5.errors import Lenet5Error
from lenet5.store.atomic import remove_stale_temps_in, write_text


def test_a_fifo_or_a_folder_is_never_replaced(tmp_path):
    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    with pytest.raises(Lenet5Error, match=f"^cannot write {fifo}: it is not a regular file"):
        write_text(fifo, "x")
    assert fifo.is_fifo() and sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]
    (tmp_path / "d").mkdir()
    with pytest.raises(Lenet5Error, match="it is a folder"):
        write_text(tmp_path / "d", "x")
    with pytest.raises(Lenet5Error, match="/dev/null: it is not a regular file"):
        write_text("/dev/null", "x")


def test_a_symlink_is_replaced_not_followed(tmp_path):
    target = tmp_path / "target"
    target.write_text("old")
    (tmp_path / "link").symlink_to(target)
    write_text(tmp_path / "link", "new")
    assert target.read_text() == "old" and (tmp_path / "link").read_text() == "new"


def test_stale_temps_are_removed_and_nothing_else(tmp_path):
    keep = [".hidden", "eval.json", ".eval.json.tmp", "notes.abcdefgh.tmp"]
    stale = [".eval.json.k2_x9q0a.tmp", ".confusion.png.ABCD1234.tmp"]
    for name in keep + stale:
        (tmp_path / name).write_text("x")
    remove_stale_temps_in(tmp_path)
    remove_stale_temps_in(tmp_path / "missing")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)
