from __future__ import annotations

import csv
import io
import json

import pytest

from annotations.exporting import stream_rows, write_rows


def test_csv_and_jsonl_round_trip_in_chunks() -> None:
    rows = [{"a": i, "b": "x" * 300, "extra": i % 2} for i in range(1_000)]
    chunks = list(stream_rows(iter(rows), ("a", "b"), "csv"))
    assert len(chunks) > 2  # streamed, not built in one piece
    parsed = list(csv.DictReader(io.StringIO("".join(chunks))))
    assert parsed[0].keys() == {"a", "b", "extra"} and len(parsed) == 1_000
    out = io.StringIO()
    assert write_rows(out, iter(rows), None, "jsonl") == 1_000
    assert json.loads(out.getvalue().splitlines()[-1])["a"] == 999


def test_empty_csv_still_has_its_header_and_bad_format_is_refused() -> None:
    assert "".join(stream_rows(iter([]), ("a", "b"), "csv")).strip() == "a,b"
    with pytest.raises(ValueError, match="format"):
        list(stream_rows(iter([]), None, "xml"))
