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


@pytest.mark.parametrize(
    "cell", ["=1+1", "+cmd", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "  =HYPERLINK(1)"]
)
def test_csv_cells_that_a_spreadsheet_would_run_get_a_leading_quote(cell) -> None:
    text = "".join(stream_rows(iter([{"a": cell, "n": -3}]), ("a", "n"), "csv"))
    row = next(csv.DictReader(io.StringIO(text)))
    assert row["a"] == "'" + cell
    assert row["n"] == "-3"  # numbers stay numbers


def test_plain_csv_cells_and_jsonl_stay_raw() -> None:
    text = "".join(stream_rows(iter([{"a": "a=b", "b": ""}]), ("a", "b"), "csv"))
    assert next(csv.DictReader(io.StringIO(text))) == {"a": "a=b", "b": ""}
    raw = "".join(stream_rows(iter([{"a": "=1+1"}]), None, "jsonl"))
    assert json.loads(raw) == {"a": "=1+1"}
