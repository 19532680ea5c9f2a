"""Tests for lenet5.data.fetch: folder and file:// mirrors, a local HTTP server, failures, and real MNIST."""

import gzip
import hashlib
import http.server
import os
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import MNIST_DIR
from lenet5.data import fetch as fetch_mod
from lenet5.errors import Lenet5Error
from lenet5.data.fetch import MNIST_FILES, fetch_mnist

# two tiny IDX files standing in for MNIST; the table holds the SHA-256 of their raw content
NAMES = ("a-idx1-ubyte", "b-idx3-ubyte")


@pytest.fixture
def fake():
    """``(contents, table)``: raw IDX bytes (1-D ubyte) per name and the matching SHA-256 table."""
    contents = {name: bytes([0, 0, 8, 1, 0, 0, 0, 4 + i]) + bytes(range(10 * i, 10 * i + 4 + i))
                for i, name in enumerate(NAMES)}
    return contents, {name: hashlib.sha256(c).hexdigest() for name, c in contents.items()}


def _folder(path: Path, files: dict) -> str:
    path.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (path / name).write_bytes(data)
    return str(path)


def _gz(contents: dict) -> dict:
    return {f"{name}.gz": gzip.compress(data) for name, data in contents.items()}


def _fails(out, mirrors, table, **kw) -> str:
    with pytest.raises(Lenet5Error) as info:
        fetch_mnist(out, mirrors, files=table, progress=False, **kw)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_folder_mirror_gz_and_raw(tmp_path, fake):
    contents, table = fake
    mirror = _folder(tmp_path / "m", {"a-idx1-ubyte.gz": gzip.compress(contents["a-idx1-ubyte"]),
                                      "b-idx3-ubyte": contents["b-idx3-ubyte"]})
    out = tmp_path / "out"
    paths = fetch_mnist(out, [mirror], files=table, progress=False)
    assert paths == [out / n for n in NAMES]
    for name in NAMES:
        assert (out / name).read_bytes() == contents[name]  # stored decompressed
    assert sorted(p.name for p in out.iterdir()) == sorted(NAMES)  # no temp files


def test_gzip_recognised_by_magic_not_by_name(tmp_path, fake):
    contents, table = fake
    mirror = _folder(tmp_path / "m", {"a-idx1-ubyte.gz": contents["a-idx1-ubyte"],  # raw under .gz
                                      "b-idx3-ubyte": gzip.compress(contents["b-idx3-ubyte"])})
    fetch_mnist(tmp_path / "out", [mirror], files=table, progress=False)
    for name in NAMES:
        assert (tmp_path / "out" / name).read_bytes() == contents[name]


def test_file_url_source_and_quiet_mode(tmp_path, fake, capsys):
    contents, table = fake
    _folder(tmp_path / "m", _gz(contents))
    fetch_mnist(tmp_path / "out", [(tmp_path / "m").as_uri()], files=table, progress=False)
    assert (tmp_path / "out" / NAMES[1]).read_bytes() == contents[NAMES[1]]
    assert capsys.readouterr().err == ""  # progress=False prints nothing


def test_wrong_bytes_then_next_mirror(tmp_path, fake, capsys):
    contents, table = fake
    bad = _folder(tmp_path / "bad", {f"{n}.gz": gzip.compress(b"not it") for n in NAMES})
    good = _folder(tmp_path / "good", _gz(contents))
    fetch_mnist(tmp_path / "out", [bad, good], files=table)
    for name in NAMES:
        assert (tmp_path / "out" / name).read_bytes() == contents[name]
    err = capsys.readouterr().err
    assert f"{bad}: a-idx1-ubyte.gz has the wrong content" in err
    assert f"from {good}" in err


def test_local_mirror_is_tried_first(tmp_path, fake, capsys):
    contents, table = fake
    local = _folder(tmp_path / "local", _gz(contents))
    fetch_mnist(tmp_path / "out", [str(tmp_path / "absent")], local_mirror=local, files=table)
    err = capsys.readouterr().err
    assert f"from {local}" in err and "absent" not in err


def test_all_sources_fail_one_line_naming_each(tmp_path, fake):
    contents, table = fake
    missing = str(tmp_path / "x" / "y")
    wrong = _folder(tmp_path / "wrong", {f"{n}.gz": gzip.compress(b"nope") for n in NAMES})
    html = _folder(tmp_path / "html", {f"{n}.gz": b"<!DOCTYPE html><html>Not Found</html>" for n in NAMES})
    empty = _folder(tmp_path / "empty", {})
    out = tmp_path / "out"
    msg = _fails(out, [wrong, html, empty], table, local_mirror=missing)
    assert msg.startswith(f"could not fetch a-idx1-ubyte: {missing}: not found; {wrong}: a-idx1-ubyte.gz")
    assert f"{html}: a-idx1-ubyte.gz is not gzip data (looks like an HTML page)" in msg
    assert msg.endswith(f"{empty}: not found (no a-idx1-ubyte.gz or a-idx1-ubyte)")
    assert not out.exists() or list(out.iterdir()) == []  # nothing partial


def test_failure_on_second_file_keeps_first_and_leaves_no_temp(tmp_path, fake):
    contents, table = fake
    mirror = _folder(tmp_path / "m", {"a-idx1-ubyte.gz": gzip.compress(contents["a-idx1-ubyte"]),
                                      "b-idx3-ubyte.gz": gzip.compress(contents["b-idx3-ubyte"])[:-9]})
    out = tmp_path / "out"
    msg = _fails(out, [mirror], table)
    assert "b-idx3-ubyte.gz is corrupt gzip data" in msg
    assert [p.name for p in out.iterdir()] == ["a-idx1-ubyte"]


def test_existing_correct_file_is_kept_wrong_one_replaced(tmp_path, fake, capsys):
    contents, table = fake
    out = _folder(tmp_path / "out", {"a-idx1-ubyte": contents["a-idx1-ubyte"], "b-idx3-ubyte": b"old"})
    os.utime(Path(out) / "a-idx1-ubyte", (1_000_000, 1_000_000))
    mirror = _folder(tmp_path / "m", {"b-idx3-ubyte.gz": gzip.compress(contents["b-idx3-ubyte"])})
    fetch_mnist(out, [mirror], files=table)
    assert (Path(out) / "a-idx1-ubyte").stat().st_mtime == 1_000_000  # not rewritten
    assert (Path(out) / "b-idx3-ubyte").read_bytes() == contents["b-idx3-ubyte"]
    assert "a-idx1-ubyte: already present and verified" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mirrors": []}, "no source"),
        ({"mirrors": ["ftp://a/"]}, "'ftp://a/' is not supported"),
        ({"local_mirror": 5}, "local mirror = 5"),
        ({"files": {"a": "abc"}}, "SHA-256 of a = 'abc'"),
        ({"files": {"../a": "0" * 64}}, "plain file name"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    args = {"mirrors": ["https://a/"], "files": {"a": "0" * 64}} | kwargs
    with pytest.raises(Lenet5Error, match=match):
        fetch_mnist(tmp_path / "out", progress=False, **args)
    assert not (tmp_path / "out").exists()


def test_default_table_is_the_four_mnist_files():
    assert list(MNIST_FILES) == ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


# --- a local HTTP server -------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    """Routes ``/<kind>/<name>.gz``: good, missing, wrong, html, hang, flaky, short, redirect."""

    def log_message(self, *args):
        pass

    def _send(self, code: int, body: bytes, length=None, **headers):
        self.send_response(code)
        for key, value in {"Content-Length": len(body) if length is None else length, **headers}.items():
            self.send_header(key, str(value))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        srv = self.server
        srv.hits.append(self.path)
        kind, _, name = self.path.strip("/").partition("/")
        good = srv.gz.get(name)
        if kind == "hang":
            srv.release.wait(10)  # far longer than the client's 1 s timeout
        fixed = {"wrong": gzip.compress(b"wrong bytes"), "html": b"<html><body>Please log in</body></html>"}
        if kind == "redirect":
            self._send(302, b"", Location=f"/good/{name}")
        elif kind == "flaky" and srv.hits.count(self.path) <= srv.fail_first:
            self._send(503, b"busy")
        elif kind == "short":
            self._send(200, good[: len(good) // 2], length=len(good))
        elif kind in fixed:
            self._send(200, fixed[kind])
        elif kind in ("good", "hang", "flaky", "redirect") and good is not None:
            self._send(200, good)
        else:
            self._send(404, b"not found")


@pytest.fixture
def server(fake, monkeypatch):
    """``(base_url, server)`` serving the fake files gzipped on an ephemeral 127.0.0.1 port."""
    monkeypatch.setattr(fetch_mod, "RETRY_BACKOFF_S", 0.0)
    contents, _ = fake
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.handle_error = lambda request, address: None  # clients that time out and leave are expected
    srv.gz, srv.hits, srv.release, srv.fail_first = _gz(contents), [], threading.Event(), 0
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def test_http_good_and_redirect(tmp_path, fake, server):
    (contents, table), (base, srv) = fake, server
    fetch_mnist(tmp_path / "out", [f"{base}/redirect"], files=table, progress=False)
    for name in NAMES:
        assert (tmp_path / "out" / name).read_bytes() == contents[name]
    assert srv.hits == ["/redirect/a-idx1-ubyte.gz", "/good/a-idx1-ubyte.gz",
                        "/redirect/b-idx3-ubyte.gz", "/good/b-idx3-ubyte.gz"]


def test_http_404_wrong_html_then_good(tmp_path, fake, server, capsys):
    (contents, table), (base, srv) = fake, server
    mirrors = [f"{base}/missing/", f"{base}/wrong/", f"{base}/html/", f"{base}/good/"]
    fetch_mnist(tmp_path / "out", mirrors, files=table, retries=2)
    assert (tmp_path / "out" / NAMES[0]).read_bytes() == contents[NAMES[0]]
    err = capsys.readouterr().err
    assert f"{base}/missing/: HTTP 404" in err and f"{base}/wrong/: a-idx1-ubyte.gz has the wrong" in err
    assert "looks like an HTML page" in err
    assert srv.hits.count("/missing/a-idx1-ubyte.gz") == 1  # a 404 is not retried


def test_http_hang_times_out_then_next_mirror(tmp_path, fake, server):
    (contents, table), (base, srv) = fake, server
    start = time.monotonic()
    fetch_mnist(tmp_path / "out", [f"{base}/hang/", f"{base}/good/"], files={NAMES[0]: table[NAMES[0]]},
                timeout=1, retries=0, progress=False)
    assert time.monotonic() - start < 5
    assert (tmp_path / "out" / NAMES[0]).read_bytes() == contents[NAMES[0]]


def test_http_all_fail_names_every_source(tmp_path, fake, server):
    (_, table), (base, srv) = fake, server
    out = tmp_path / "out"
    msg = _fails(out, [f"{base}/missing", f"{base}/wrong/", f"{base}/hang/"], table, timeout=1, retries=0)
    assert msg == (f"could not fetch a-idx1-ubyte: {base}/missing: HTTP 404; "
                   f"{base}/wrong/: a-idx1-ubyte.gz has the wrong content "
                   f"(SHA-256 {hashlib.sha256(b'wrong bytes').hexdigest()[:12]}..., "
                   f"expected {table['a-idx1-ubyte'][:12]}...); {base}/hang/: timed out after 1 s")
    assert not out.exists() or list(out.iterdir()) == []


def test_http_network_errors_are_retried(tmp_path, fake, server):
    (contents, table), (base, srv) = fake, server
    srv.fail_first = 2
    one = {NAMES[0]: table[NAMES[0]]}
    assert "HTTP 503" in _fails(tmp_path / "o1", [f"{base}/flaky/"], one, retries=1)
    srv.hits.clear()
    fetch_mnist(tmp_path / "o2", [f"{base}/flaky/"], files=one, retries=2, progress=False)
    assert srv.hits == ["/flaky/a-idx1-ubyte.gz"] * 3
    assert (tmp_path / "o2" / NAMES[0]).read_bytes() == contents[NAMES[0]]


def test_http_short_body_and_refused_connection(tmp_path, fake, server):
    (_, table), (base, srv) = fake, server
    with socket.socket() as s:  # a port that nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/"
    msg = _fails(tmp_path / "out", [f"{base}/short/", closed], {NAMES[0]: table[NAMES[0]]}, retries=1)
    assert srv.hits.count("/short/a-idx1-ubyte.gz") == 2  # retried once
    assert f"{closed}: Connection refused" in msg


def test_https_to_http_redirect_is_refused():
    handler = fetch_mod._NoDowngrade()
    req = urllib.request.Request("https://mirror.example/mnist/a.gz")
    with pytest.raises(fetch_mod._SourceFailed, match="refused redirect from https"):
        handler.redirect_request(req, None, 302, "Found", {}, "http://mirror.example/mnist/a.gz")
    assert handler.redirect_request(req, None, 302, "Found", {}, "https://other.example/a.gz") is not None


# --- the real files ------------------------------------------------------------------------------



@pytest.mark.mnist
@pytest.mark.skipif(not all((MNIST_DIR / f"{n}.gz").is_file() for n in MNIST_FILES),
                    reason=f"real MNIST not found in {MNIST_DIR}")
def test_real_mnist_from_local_mirror(tmp_path):
    paths = fetch_mnist(tmp_path, [], local_mirror=str(MNIST_DIR), progress=False)
    assert [p.name for p in paths] == list(MNIST_FILES)
    for path in paths:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == MNIST_FILES[path.name]
    assert (tmp_path / "train-images-idx3-ubyte").stat().st_size == 16 + 60000 * 28 * 28
