"""Reading ``params.yaml`` the way DVC reads it, within fixed limits of size, nesting and aliases.

DVC parses parameter files with ruamel.yaml's safe loader (YAML 1.2: ``010`` is 10, ``1e2`` is
100.0, ``on`` and ``yes`` are strings, ``1:20`` is a string), so this module parses them with the
same loader: the run and ``dvc params diff`` see one value. Before anything is built, the file is
read up to ``MAX_BYTES`` (a bigger file, or an endless one such as ``/dev/zero``, is refused) and
its events are walked once, without recursion, to refuse nesting deeper than ``MAX_DEPTH``, more
than ``MAX_NODES`` nodes once aliases are expanded ("billion laughs"), a scalar longer than
``MAX_SCALAR`` characters, and a key given twice in one mapping. Every failure is one line that
starts with the file name, and line:column where the parser knows them.
"""

import re
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml import YAMLError
from ruamel.yaml.reader import ReaderError

from ..errors import Lenet5Error

MAX_BYTES = 1 << 20  # 1 MiB: params.yaml is about 3 kB
MAX_DEPTH = 32  # nested blocks and lists
MAX_NODES = 10_000  # scalars, mappings and lists, with every alias expanded
MAX_SCALAR = 1000  # characters of one value (a 5000-digit integer is refused)

_BRACKETS = re.compile(r"[\[\]{}]")
_NODES = ("ScalarEvent", "AliasEvent", "MappingStartEvent", "SequenceStartEvent")


def _where(source, mark) -> str:
    return f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(source)


class _Frame:
    """An open mapping or list while the events are walked."""

    def __init__(self, is_map, path, anchor):
        self.is_map, self.path, self.anchor = is_map, path, anchor
        self.key_next, self.last, self.seen, self.size = True, "?", set(), 1


def _flow_depth(text, source) -> None:
    """Refuse ``[[[[...`` nested deeper than ``MAX_DEPTH`` before the parser sees it (its scanner
    looks ahead quadratically in flow collections); brackets in quotes count too, never below 0."""
    depth = 0
    for m in _BRACKETS.finditer(text):
        depth = depth + 1 if m.group() in "[{" else max(depth - 1, 0)
        if depth > MAX_DEPTH:
            line = text.count("\n", 0, m.start())
            where = f"{source}:{line + 1}:{m.start() - text.rfind(chr(10), 0, m.start())}"
            raise Lenet5Error(f"{where}: nested more than {MAX_DEPTH} levels deep")


def _scan(text, source) -> None:
    """Walk the parser's events once: depth, expanded size, scalar length and duplicate keys."""
    _flow_depth(text, source)
    stack, sizes, total = [], {}, 0
    for ev in YAML(typ="safe").parse(text):
        name = type(ev).__name__
        if name in ("MappingEndEvent", "SequenceEndEvent"):
            done = stack.pop()
            if done.anchor is not None:
                sizes[done.anchor] = done.size
            if stack:
                stack[-1].size += done.size
            continue
        if name not in _NODES:
            continue
        parent = stack[-1] if stack else None
        path = parent.path if parent else ""
        if parent is not None and parent.is_map:
            if parent.key_next:  # this node is a key
                if name == "ScalarEvent":
                    if ev.value in parent.seen:
                        raise Lenet5Error(f"{_where(source, ev.start_mark)}: duplicate key '{path}{ev.value}'")
                    parent.seen.add(ev.value)
                parent.last = ev.value if name == "ScalarEvent" else "?"
            else:
                path = f"{path}{parent.last}."
            parent.key_next = not parent.key_next
        size = sizes.get(ev.anchor, 1) if name == "AliasEvent" else 1
        total += size
        if total > MAX_NODES:
            raise Lenet5Error(f"{_where(source, ev.start_mark)}: more than {MAX_NODES} values once aliases are "
                              f"expanded; expected a parameter file of a few dozen")
        if name == "ScalarEvent" and len(ev.value) > MAX_SCALAR:
            raise Lenet5Error(f"{_where(source, ev.start_mark)}: a value of {len(ev.value)} characters; "
                              f"expected at most {MAX_SCALAR}")
        if name.endswith("StartEvent"):
            if len(stack) >= MAX_DEPTH:
                raise Lenet5Error(f"{_where(source, ev.start_mark)}: nested more than {MAX_DEPTH} levels deep")
            stack.append(_Frame(name == "MappingStartEvent", path, ev.anchor))
            continue
        if name == "ScalarEvent" and ev.anchor is not None:
            sizes[ev.anchor] = 1
        if parent is not None:
            parent.size += size


def _yaml_error(e, text, source) -> Lenet5Error:
    """A one-line error from a ruamel.yaml exception, with 1-based line:column where known."""
    if isinstance(e, ReaderError):  # a bad character: it knows only its offset
        pos = e.position
        where = f"{source}:{text.count(chr(10), 0, pos) + 1}:{pos - text.rfind(chr(10), 0, pos)}"
        return Lenet5Error(f"{where}: invalid YAML: {e.reason} (character #x{e.character:04x})"
                           if isinstance(e.character, int) else f"{where}: invalid YAML: {e.reason}")
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    context = getattr(e, "context", None)
    if context and not context.startswith("while"):
        problem = f"{context}, {problem}"  # e.g. "expected a single document ..., but found another"
    return Lenet5Error(f"{_where(source, mark)}: invalid YAML: {problem}")


def _read_text(path) -> str:
    """The file's text, read as at most ``MAX_BYTES`` + 1 bytes."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise Lenet5Error(f"{path}: not found (expected the YAML parameter file at {p.resolve()})") from None
    except IsADirectoryError:
        raise Lenet5Error(f"{path}: is a folder, expected the YAML parameter file") from None
    except OSError as e:
        raise Lenet5Error(f"{path}: cannot read: {e.strerror or e}") from None
    if len(data) > MAX_BYTES:
        raise Lenet5Error(f"{path}: larger than {MAX_BYTES} bytes; expected a YAML parameter file of a few kB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Lenet5Error(f"{path}: not UTF-8 text (bad byte at offset {e.start})") from None


def read_yaml(path):
    """The data of the YAML file at ``path``, parsed as DVC parses it, after every limit is checked."""
    text = _read_text(path)
    try:
        _scan(text, path)
        return YAML(typ="safe").load(text)
    except YAMLError as e:
        raise _yaml_error(e, text, path) from None
    except (ValueError, RecursionError) as e:  # e.g. a value the loader cannot convert
        raise Lenet5Error(f"{path}: invalid YAML: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
