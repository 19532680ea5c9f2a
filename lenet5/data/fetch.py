"""Get the four MNIST files into a folder as decompressed IDX files, each checked by SHA-256.

Sources are tried in order: the local mirror (the CLI passes ``$MNIST_MIRROR``), then the mirrors
from params.yaml. A source is a folder, a ``file://`` URL or an ``http(s)://`` base URL; plain
``http://`` is used only when listed explicitly, and a redirect from https down to http is refused.
From a URL ``<name>.gz`` is downloaded; from a folder ``<name>.gz`` or the uncompressed ``<name>``.
Gzip is recognised by its magic bytes, not by the name, and the SHA-256 of the *decompressed*
content is what must match, so any correct copy is accepted.

A wrong hash, an HTTP error, a timeout or a refused connection moves on to the next source (network
errors are first retried ``retries`` times); when every source fails, one ``Lenet5Error`` line lists
each source and why. Files are written atomically: a failure never leaves a partial file behind.
"""

import contextlib
import gzip
import hashlib
import http.client
import io
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path

from ..errors import Lenet5Error
from ..store.atomic import write_bytes
from .idx import MNIST_NAMES

# file name -> SHA-256 of its decompressed content (see /work/shared/mnist/README.md)
_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_FILES = {name: _SHA256[name] for pair in MNIST_NAMES.values() for name in pair}

RETRY_BACKOFF_S = 0.5  # pause before the first retry of a network error; doubles on each retry
MAX_BYTES = 256 * 2**20  # refuse larger downloads or decompressed files (MNIST's largest is 47 MB)
_CHUNK = 64 * 1024
_USER_AGENT = "lenet5-fetch/1.0 (python urllib)"
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class _SourceFailed(Exception):
    """One source could not deliver one file; ``retry`` says whether trying again may help."""

    def __init__(self, reason: str, retry: bool = False):
        super().__init__(reason)
        self.reason, self.retry = reason, retry


class _NoDowngrade(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but never from https:// down to plain http://."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if req.full_url.lower().startswith("https:") and not newurl.lower().startswith("https:"):
            raise _SourceFailed(f"refused redirect from https to {newurl}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_NoDowngrade)


class _Reporter:
    """Progress on stderr: a rich bar for downloads on a terminal, plain lines otherwise, or nothing."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()

    def line(self, text: str) -> None:
        if self.enabled:
            print(f"fetch: {text}", file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def bar(self, label: str, total):
        """Yield ``advance(n_bytes)``; draws a bar (bytes, speed) only on a terminal."""
        if not self.tty:
            yield lambda n: None
            return
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                   TimeRemainingColumn, TransferSpeedColumn)

        with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                      TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(label, total=total)
            yield lambda n: bar.advance(task, n)


def classify(source: str):
    """``("folder", Path)`` or ``("url", base ending in /)`` for a source; ``Lenet5Error`` for a URL
    of another scheme. The one rule for what a source may be; every source is classified before
    anything is fetched."""
    m = _SCHEME.match(source)
    if not m:
        return "folder", Path(source).expanduser()
    scheme = m.group(1).lower()
    if scheme in ("http", "https"):
        return "url", source if source.endswith("/") else source + "/"
    parsed = urllib.parse.urlparse(source)
    if scheme == "file" and parsed.netloc in ("", "localhost"):
        return "folder", Path(urllib.request.url2pathname(parsed.path))
    raise Lenet5Error(
        f"fetch source {source!r} is not supported; expected a folder, a file:// URL "
        f"or an http(s):// URL"
    )


def _sources(mirrors, local_mirror, files):
    """``(sources, files)``: sources as (label, kind, where), the local mirror first.

    ``mirrors`` come from params.yaml as non-empty strings (``pipeline/config.py``); the local mirror
    comes from the environment and ``files`` from the caller, so those two are checked here.
    """
    if isinstance(local_mirror, os.PathLike):
        local_mirror = os.fspath(local_mirror)
    if local_mirror is not None and not isinstance(local_mirror, str):
        raise Lenet5Error(f"fetch local mirror = {local_mirror!r}; expected a folder or URL string")
    files = MNIST_FILES if files is None else files
    if not isinstance(files, dict) or not files:
        raise Lenet5Error(f"fetch files = {files!r}; expected a dict of file name -> SHA-256")
    for name, sha in files.items():
        if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name:
            raise Lenet5Error(f"fetch file name {name!r}; expected a plain file name")
        if not isinstance(sha, str) or not _HEX64.fullmatch(sha):
            raise Lenet5Error(f"fetch SHA-256 of {name} = {sha!r}; expected 64 lowercase hex digits")
    labels = ([local_mirror.strip()] if local_mirror and local_mirror.strip() else []) + list(mirrors)
    if not labels:
        raise Lenet5Error("fetch has no source: mirrors is empty and no local mirror (MNIST_MIRROR) is set")
    return [(label, *classify(label)) for label in labels], files


def _sha256_file(path: Path):
    """Hex SHA-256 of a file, or None when it is missing or unreadable."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


def _decode(what: str, raw: bytes, expected: str) -> bytes:
    """Decompress ``raw`` if it is gzip (by magic bytes) and check its SHA-256."""
    is_gzip = raw[:2] == b"\x1f\x8b"
    data = raw
    if is_gzip:
        try:
            data = gzip.GzipFile(fileobj=io.BytesIO(raw)).read(MAX_BYTES + 1)
        except (OSError, EOFError, zlib.error) as e:
            raise _SourceFailed(f"{what} is corrupt gzip data ({e})") from e
        if len(data) > MAX_BYTES:
            raise _SourceFailed(f"{what} decompresses to more than {MAX_BYTES >> 20} MiB")
    got = hashlib.sha256(data).hexdigest()
    if got == expected:
        return data
    if not is_gzip and what.endswith(".gz"):
        html = raw.lstrip()[:1] == b"<"
        raise _SourceFailed(f"{what} is not gzip data" + (" (looks like an HTML page)" if html else ""))
    raise _SourceFailed(f"{what} has the wrong content (SHA-256 {got[:12]}..., expected {expected[:12]}...)")


def _from_folder(folder: Path, name: str, expected: str) -> bytes:
    """Read ``<name>.gz`` or ``<name>`` from a local folder; the first good one wins."""
    reasons = []
    for candidate in (f"{name}.gz", name):
        path = folder / candidate
        if not path.is_file():
            continue
        try:
            if path.stat().st_size > MAX_BYTES:
                reasons.append(f"{candidate} is larger than {MAX_BYTES >> 20} MiB")
                continue
            return _decode(candidate, path.read_bytes(), expected)
        except OSError as e:
            reasons.append(f"cannot read {candidate}: {e.strerror or e}")
        except _SourceFailed as e:
            reasons.append(e.reason)
    if not reasons:
        raise _SourceFailed("not found" if not folder.is_dir() else f"not found (no {name}.gz or {name})")
    raise _SourceFailed(", ".join(reasons))


def _download(url: str, timeout: float, label: str, report: _Reporter) -> bytes:
    """GET ``url`` whole; network trouble becomes ``_SourceFailed`` (retry=True where it may help)."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with _OPENER.open(request, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length", "")
            total = int(length) if length.isdigit() else None
            if total is not None and total > MAX_BYTES:
                raise _SourceFailed(f"{label} is {total} bytes, more than {MAX_BYTES >> 20} MiB")
            buf = bytearray()
            with report.bar(label, total) as advance:
                while chunk := resp.read(_CHUNK):
                    buf += chunk
                    if len(buf) > MAX_BYTES:
                        raise _SourceFailed(f"{label} is more than {MAX_BYTES >> 20} MiB")
                    advance(len(chunk))
    except urllib.error.HTTPError as e:
        raise _SourceFailed(f"HTTP {e.code}", retry=e.code >= 500 or e.code == 429) from e
    except urllib.error.URLError as e:
        if isinstance(e.reason, TimeoutError):
            raise _SourceFailed(f"timed out after {timeout:g} s", retry=True) from e
        reason = getattr(e.reason, "strerror", None) or str(e.reason)
        raise _SourceFailed(reason, retry=True) from e
    except TimeoutError as e:
        raise _SourceFailed(f"timed out after {timeout:g} s", retry=True) from e
    except (http.client.HTTPException, OSError) as e:
        raise _SourceFailed(f"{type(e).__name__}: {e}", retry=True) from e
    if total is not None and len(buf) != total:
        raise _SourceFailed(f"connection closed after {len(buf)} of {total} bytes", retry=True)
    return bytes(buf)


def _fetch_one(source, name: str, expected: str, timeout: float, retries: int, report) -> bytes:
    """The verified, decompressed content of ``name`` from one source, or ``_SourceFailed``."""
    label, kind, where = source
    if kind == "folder":
        return _from_folder(where, name, expected)
    for attempt in range(retries + 1):
        try:
            raw = _download(f"{where}{name}.gz", timeout, f"{name}.gz", report)
            break
        except _SourceFailed as e:
            if not e.retry or attempt == retries:
                raise
            report.line(f"{name}: {label}: {e.reason}; retrying")
            time.sleep(RETRY_BACKOFF_S * 2**attempt)
    return _decode(f"{name}.gz", raw, expected)


def fetch_mnist(out_dir, mirrors, timeout: float = 30, retries: int = 2, local_mirror=None,
                progress: bool = True, files=None) -> list[Path]:
    """Put each file of ``files`` into ``out_dir`` as decompressed, SHA-256-verified content.

    Parameters
    ----------
    out_dir : str or Path
        Destination folder (created if needed).
    mirrors : list of str
        Folders, ``file://`` URLs or ``http(s)://`` base URLs, tried in order after ``local_mirror``.
    timeout : float
        Seconds without data before a download attempt is abandoned.
    retries : int
        Extra attempts per file and URL after a network error (not after wrong content).
    local_mirror : str or None
        A folder or URL tried first (the CLI passes ``$MNIST_MIRROR``); None or "" for none.
    progress : bool
        Report on stderr: a progress bar on a terminal, else one line per file.
    files : dict of str -> str, optional
        File name -> SHA-256 of its decompressed content; default ``MNIST_FILES`` (the four files).

    Returns
    -------
    list of Path
        ``out_dir / name`` for each file, in the order of ``files``.
    """
    sources, files = _sources(mirrors, local_mirror, files)
    out_dir = Path(out_dir)
    report = _Reporter(bool(progress))
    paths = []
    for name, expected in files.items():
        target = out_dir / name
        if _sha256_file(target) == expected:
            report.line(f"{name}: already present and verified")
            paths.append(target)
            continue
        failures = []
        for source in sources:
            try:
                data = _fetch_one(source, name, expected, timeout, int(retries), report)
            except _SourceFailed as e:
                failures.append(f"{source[0]}: {e.reason}")
                report.line(f"{name}: {source[0]}: {e.reason}")
                continue
            write_bytes(target, data)
            report.line(f"{name}: {len(data)} bytes from {source[0]}")
            break
        else:
            raise Lenet5Error(f"could not fetch {name}: " + "; ".join(failures))
        paths.append(target)
    return paths
