"""Tests of ``lenet5 predict``: one line per input, failures that spare the other inputs, folders,
JSON, true labels beside an IDX file, rejection thresholds, and a mixed folder on a trained model.

Most run in-process through typer's CliRunner on an untrained network (the kind of answer is what is
checked); the last one trains a small model on real MNIST for a few seconds.
"""

import gzip
import json
import shutil

import numpy as np
import pytest
from PIL import Image, ImageDraw

from conftest import MNIST_DIR, ROOT, invoke, needs_mnist, one_error_line, set_params, write_idx
from lenet5.data.image import load_digit
from lenet5.data.preprocess import normalize
from lenet5.evaluation.rejection import DEFAULT_THRESHOLD


def draw(path, strokes, size=(80, 100)):
    """A PNG of black strokes (lists of points) 9 px wide on white paper."""
    im = Image.new("L", size, 255)
    for points in strokes:
        ImageDraw.Draw(im).line(points, fill=0, width=9)
    im.save(path)
    return path


SEVEN = [[(20, 15), (62, 15), (34, 90)]]
ONE = [[(40, 10), (40, 90)]]


@pytest.fixture(autouse=True)
def elsewhere(tmp_path, monkeypatch):
    """Run in an empty folder, so the project's own metrics/eval.json is not read."""
    monkeypatch.chdir(tmp_path)


def test_predict_needs_an_input():
    one_error_line(invoke("predict"), "image files", "--idx")


def test_a_drawn_digit_gets_its_digit_and_confidence(tmp_path, model):
    path, net = model
    png = draw(tmp_path / "seven.png", SEVEN)
    result = invoke("predict", "--model", path, "--reject", 0, png)
    assert result.exit_code == 0, result.output
    y = net.forward(load_digit(png)[None])[0]  # (1, 1, 32, 32) -> (10,)
    two = np.sort(y)[:2]
    assert result.stdout == f"{png}: {int(y.argmin())}  confidence {two[1] - two[0]:.1f}\n"


def test_a_bad_file_spares_the_others(tmp_path, model):
    good, blank, other = tmp_path / "1.png", tmp_path / "blank.png", tmp_path / "2.png"
    draw(good, SEVEN), draw(blank, []), draw(other, ONE)
    result = invoke("predict", "--model", model[0], "--reject", 0, good, blank, other)
    lines = result.stdout.splitlines()
    assert [ln.split(":")[0] for ln in lines] == [str(good), str(other)], result.output
    one_error_line(result, "blank.png", "no digit found")
    result = invoke("predict", "--model", model[0], "--reject", 0, "--json", good, blank, other)
    assert result.exit_code == 1 and result.stderr == ""
    objs = [json.loads(ln) for ln in result.stdout.splitlines()]
    assert [o["input"] for o in objs] == [str(good), str(blank), str(other)]
    assert "error" not in objs[0] and "error" not in objs[2] and objs[0]["digit"] in range(10)
    assert "blank.png" in objs[1]["error"] and set(objs[1]) == {"input", "error"}
    assert invoke("predict", "--model", model[0], good, other).exit_code == 0


def test_a_folder_gives_its_images_sorted(tmp_path, model):
    folder = tmp_path / "scans"
    folder.mkdir()
    for name in ("b.PNG", "a.png", "c.jpg"):
        draw(folder / name, ONE)
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub").mkdir()
    result = invoke("predict", "--model", model[0], "--reject", 0, folder)
    assert result.exit_code == 0, result.output
    assert [ln.split(":")[0] for ln in result.stdout.splitlines()] == [
        str(folder / n) for n in ("a.png", "b.PNG", "c.jpg")]
    one_error_line(invoke("predict", "--model", model[0], folder / "sub"), "sub", "no image files", ".png")


@pytest.mark.parametrize("with_labels", [True, False])
def test_an_idx_image_with_the_true_label_beside_it(tmp_path, model, with_labels):
    path, net = model
    images = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    idx = tmp_path / "t10k-images-idx3-ubyte"
    write_idx(idx, images)
    if with_labels:
        write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([5, 8, 2], np.uint8))
    result = invoke("predict", "--model", path, "--reject", 0, "--idx", idx, "--index", 1, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    expected = net.forward(normalize(images[1:2]))[0]  # (1, 1, 32, 32) -> (10,)
    assert out["input"] == f"{idx}[1]" and out["digit"] == int(expected.argmin())
    assert out["distances"] == pytest.approx(expected, abs=1e-3)
    assert out.get("label") == (8 if with_labels else None)
    text = invoke("predict", "--model", path, "--idx", idx, "--index", 1).stdout
    assert text.rstrip().endswith("true 8") == with_labels, text


def test_labels_that_do_not_match_the_images_are_refused(tmp_path, model):
    idx = tmp_path / "x-images-idx3-ubyte"
    write_idx(idx, np.zeros((3, 28, 28), np.uint8))
    write_idx(tmp_path / "x-labels-idx1-ubyte", np.zeros(4, np.uint8))
    one_error_line(invoke("predict", "--model", model[0], "--idx", idx), "3 images but 4 labels")


def test_predict_index_out_of_range(tmp_path, model):
    idx = tmp_path / "three-idx3-ubyte"
    write_idx(idx, np.zeros((3, 28, 28), np.uint8))
    one_error_line(invoke("predict", "--model", model[0], "--idx", idx, "--index", 5), "5", "0-2")


@pytest.mark.parametrize("content", [b"this is not an image\n", b""], ids=["text", "empty"])
def test_predict_a_file_that_is_not_an_image(tmp_path, model, content):
    fake = tmp_path / "digit.png"
    fake.write_bytes(content)
    one_error_line(invoke("predict", "--model", model[0], fake), "digit.png")


def test_a_missing_model_says_how_to_make_one(tmp_path):
    one_error_line(invoke("predict", "--model", tmp_path / "none.npz", tmp_path / "x.png"),
                   "none.npz", "`dvc repro`", "`lenet5 train`")


def test_a_margin_below_the_threshold_is_unsure(tmp_path, model):
    png = draw(tmp_path / "seven.png", SEVEN)
    conf = json.loads(invoke("predict", "--model", model[0], "--reject", 0, "--json", png).stdout)["confidence"]
    assert conf > 1e-5  # an untrained net: small margins, but not ties
    above = invoke("predict", "--model", model[0], "--reject", conf * 2, png)
    assert above.exit_code == 0 and above.stdout.startswith(f"{png}: unsure  confidence"), above.output
    below = json.loads(invoke("predict", "--model", model[0], "--reject", conf / 2, "--json", png).stdout)
    assert below["digit"] == below["best"] and below["threshold"] == pytest.approx(conf / 2)
    unsure = json.loads(invoke("predict", "--model", model[0], "--reject", conf * 2, "--json", png).stdout)
    assert unsure["digit"] is None and unsure["best"] == below["best"]


def test_the_threshold_comes_from_eval_json(tmp_path, model):
    png = draw(tmp_path / "seven.png", SEVEN)  # the folder has no metrics/eval.json: the documented constant
    assert json.loads(invoke("predict", "--model", model[0], "--json", png).stdout)["threshold"] == DEFAULT_THRESHOLD
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "eval.json").write_text(json.dumps({"accuracy": 0.99}))  # from before rejection
    result = invoke("predict", "--model", model[0], "--json", png)
    assert result.exit_code == 0 and json.loads(result.stdout)["threshold"] == DEFAULT_THRESHOLD
    assert result.stderr.startswith("note: ") and "reject_threshold" in result.stderr
    (tmp_path / "metrics" / "eval.json").write_text(json.dumps({"accuracy": 0.99, "reject_threshold": 3.5}))
    assert json.loads(invoke("predict", "--model", model[0], "--json", png).stdout)["threshold"] == 3.5
    assert json.loads(invoke("predict", "--model", model[0], "--json", "--reject", 1, png).stdout)["threshold"] == 1
    other = tmp_path / "other.json"
    other.write_text("{not json")
    one_error_line(invoke("predict", "--model", model[0], "--threshold-from", other, png), "other.json", "JSON")
    other.write_text(json.dumps({"reject_threshold": -1}))
    one_error_line(invoke("predict", "--model", model[0], "--threshold-from", other, png), "other.json", "-1")
    one_error_line(invoke("predict", "--model", model[0], "--threshold-from", tmp_path / "no.json", png), "no.json")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A LeNet-5 trained for 2 epochs on 3,000 MNIST digits (a few seconds): the model's path."""
    tmp = tmp_path_factory.mktemp("trained")
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        with gzip.open(MNIST_DIR / f"{name}.gz") as src, open(tmp / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    params = tmp / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    set_params(params, {"preprocess.train_limit": 3000, "preprocess.test_limit": 100, "train.epochs": 2})
    assert invoke("preprocess", "--params", params, "--raw", tmp, "--out", tmp / "data").exit_code == 0
    result = invoke("train", "--params", params, "--data", tmp / "data", "--checkpoint", tmp / "last.npz",
                    "--model", tmp / "m.npz", "--metrics", tmp / "t.json", "--log", tmp / "log.csv",
                    "--timing", tmp / "timing.json", "--no-progress")
    assert result.exit_code == 0, result.output
    return tmp / "m.npz"


@needs_mnist
def test_a_folder_of_mixed_inputs_gets_one_line_each(tmp_path, trained):
    folder = tmp_path / "mixed"
    folder.mkdir()
    draw(folder / "a_seven.png", SEVEN)
    draw(folder / "b_one.png", ONE)
    draw(folder / "c_letter_x.png", [[(15, 15), (85, 85)], [(85, 15), (15, 85)]], size=(100, 100))
    draw(folder / "d_blank.png", [])
    (folder / "e_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n and then nothing")
    result = invoke("predict", "--model", trained, "--reject", 5, folder)
    assert result.exit_code == 1
    out, err = result.stdout.splitlines(), result.stderr.splitlines()
    assert out[0].startswith(f"{folder / 'a_seven.png'}: 7  confidence"), result.output
    assert out[1].startswith(f"{folder / 'b_one.png'}: 1  confidence"), result.output
    assert out[2].startswith(f"{folder / 'c_letter_x.png'}: "), result.output  # a digit or unsure: an answer
    assert len(out) == 3 and len(err) == 2, result.output
    assert err[0].startswith("error: ") and "d_blank.png" in err[0] and "no digit found" in err[0]
    assert err[1].startswith("error: ") and "e_broken.png" in err[1]


@needs_mnist
def test_classifying_a_file_from_python(tmp_path, trained):
    from lenet5 import LeNet5, read_digit

    png = draw(tmp_path / "7.png", SEVEN)
    digits = LeNet5.load(trained).predict(read_digit(png)[None])  # (1, 32, 32) -> (1, 1, 32, 32)
    assert digits.tolist() == [7]
