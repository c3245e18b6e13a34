"""Row writers shared by every export (commands, API streams, background files): CSV or JSONL,
written row by row so a million rows take constant memory. Pure Python, no Django.

CSV cells are made safe to open in a spreadsheet (OWASP "CSV Injection"): a text cell whose
first character, or first character after leading whitespace, is `=`, `+`, `-`, `@`, tab or
carriage return would be read as a formula, so it gets a leading single quote. The csv module
already quotes cells and doubles embedded quotes. JSONL stays raw: it is read by programs.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

FORMATS = ("csv", "jsonl")
CHUNK_CHARS = 64_000
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """`value` with a leading `'` when it is text a spreadsheet would run as a formula; other
    values (numbers, None, booleans) unchanged."""
    if isinstance(value, str) and value.lstrip(" \n").startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def stream_rows(
    rows: Iterable[dict[str, Any]], fields: tuple[str, ...] | None, fmt: str
) -> Iterator[str]:
    """Yields `rows` as CSV (columns: `fields`, then any extra keys of the first row) or JSONL,
    in chunks of about 64 kB. Raises ValueError for another format."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    buffer = io.StringIO()
    writer = None
    for row in rows:
        if fmt == "jsonl":
            buffer.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            if writer is None:
                columns = list(fields or ()) + [k for k in row if k not in (fields or ())]
                writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
                writer.writeheader()
            writer.writerow({key: spreadsheet_safe(value) for key, value in row.items()})
        if buffer.tell() > CHUNK_CHARS:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if fmt == "csv" and writer is None and fields:
        csv.DictWriter(buffer, fieldnames=list(fields)).writeheader()
    yield buffer.getvalue()


def write_rows(
    handle: TextIO, rows: Iterable[dict[str, Any]], fields: tuple[str, ...] | None, fmt: str
) -> int:
    """Writes `stream_rows(...)` to `handle`; returns how many rows were written."""
    count = 0

    def counted() -> Iterator[dict[str, Any]]:
        nonlocal count
        for row in rows:
            count += 1
            yield row

    for chunk in stream_rows(counted(), fields, fmt):
        handle.write(chunk)
    return count
