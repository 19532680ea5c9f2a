"""The per-epoch training log (``metrics/train_log.csv``): one row per epoch, written atomically.

Columns: epoch, train_loss, train_error (on the fly, as a fraction), test_error (fraction) and lr
(the global eta of that epoch, lr_scale included). Only what the run computes, never how long it
took: the same run gives the same bytes on every machine (timings go to the train step's timing log). Training writes it, evaluation
plots it.
"""

import csv
import io
from pathlib import Path

from ..errors import Lenet5Error
from .atomic import write_text

LOG_FIELDS = ("epoch", "train_loss", "train_error", "test_error", "lr")


def read_log_csv(path) -> list[dict]:
    """Rows of a training log as dicts: ``epoch`` int, the other five fields float.

    A missing or malformed file raises ``Lenet5Error`` naming the file and the line.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise Lenet5Error(f"cannot read training log {path}: {getattr(e, 'strerror', None) or e}") from e
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != LOG_FIELDS:
        raise Lenet5Error(f"{path}: line 1: expected the header {','.join(LOG_FIELDS)}, got {header}")
    rows = []
    for cells in reader:
        line = reader.line_num
        if not cells:
            continue  # blank line
        if len(cells) != len(LOG_FIELDS):
            raise Lenet5Error(f"{path}: line {line}: expected {len(LOG_FIELDS)} fields, got {len(cells)}")
        try:
            row = {"epoch": int(cells[0])}
            row.update({k: float(v) for k, v in zip(LOG_FIELDS[1:], cells[1:])})
        except ValueError as e:
            raise Lenet5Error(f"{path}: line {line}: expected numbers, got {','.join(cells)}") from e
        rows.append(row)
    return rows


def write_log_csv(path, rows: list[dict]) -> None:
    """Write the whole training log (header + one line per row) atomically."""
    lines = [",".join(LOG_FIELDS)]
    for row in rows:
        missing = [k for k in LOG_FIELDS if k not in row]
        if missing:
            raise Lenet5Error(f"training log row: expected keys {', '.join(LOG_FIELDS)}, missing {', '.join(missing)}")
        try:
            lines.append(",".join([str(int(row["epoch"]))] + [repr(float(row[k])) for k in LOG_FIELDS[1:]]))
        except (TypeError, ValueError) as e:
            raise Lenet5Error(f"training log row: expected numbers, got {row}") from e
    write_text(path, "\n".join(lines) + "\n")
