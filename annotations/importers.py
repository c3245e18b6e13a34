"""Parsers for pair files: JSONL (one item a line) and AlpacaEval-style pairs of JSON files.

Pure Python, no Django: a parser reads bytes and returns items plus `file:line: reason` issues
for every bad line (capped), so the service can refuse the whole import and write nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from annotations.jsonsafety import json_problem_text, number_problem, text_problem

TASK_TYPES = ("generation", "classification", "structured", "chat")
PREFERENCES = ("base", "tuned", "tie", "both_bad")
MAX_EXTERNAL_ID_LENGTH = 200
MAX_LABEL_LENGTH = 200

JSONL_REQUIRED = ("prompt", "base", "tuned")
JSONL_OPTIONAL = (
    "id",
    "reference",
    "label",
    "task",
    "metadata",
    "base_model",
    "tuned_model",
    "gold",
    "priority",
)


@dataclass(frozen=True)
class ParsedItem:
    line: int
    external_id: str
    prompt: str
    base: str
    tuned: str
    reference: str = ""
    label: str = ""
    task_type: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    base_model: str = ""
    tuned_model: str = ""
    gold_preference: str = ""
    priority: float = 0.0


@dataclass(frozen=True)
class ImportIssue:
    file: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.reason}"


@dataclass
class ParseResult:
    items: list[ParsedItem]
    issues: list[ImportIssue]
    bad_lines: int
    lines_read: int
    # Bad lines per file (every one counted, beyond the capped `issues`), in the order met.
    bad_lines_by_file: dict[str, int] = field(default_factory=dict)
    # Rows left out on purpose (an AlpacaEval pair with `unmatched="skip"`), each with its
    # file, line and why; they are not errors.
    skipped: list[ImportIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.bad_lines == 0

    def bad_files(self) -> str:
        """Where the bad lines are ("tuned.json", or "base.json (1), tuned.json (2)" when
        several files have some), for the summary of a refused import."""
        if len(self.bad_lines_by_file) == 1:
            return next(iter(self.bad_lines_by_file))
        return ", ".join(f"{name} ({count})" for name, count in self.bad_lines_by_file.items())

    def skipped_report(self, *, examples: int = 5) -> dict[str, dict[str, Any]]:
        """Per file: how many rows were skipped and the first `examples` of them
        (`file:line: reason`)."""
        report: dict[str, dict[str, Any]] = {}
        for row in self.skipped:
            entry = report.setdefault(row.file, {"count": 0, "first": []})
            entry["count"] += 1
            if len(entry["first"]) < examples:
                entry["first"].append(str(row))
        return report


class IssueCollector:
    """Keeps the first `limit` issues but counts every bad line (per file too)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.issues: list[ImportIssue] = []
        self.bad_lines = 0
        self.bad_by_file: dict[str, int] = {}

    def add(self, issue: ImportIssue) -> None:
        self.bad_lines += 1
        self.bad_by_file[issue.file] = self.bad_by_file.get(issue.file, 0) + 1
        if len(self.issues) < self.limit:
            self.issues.append(issue)


def content_id(*parts: str) -> str:
    """A stable id for rows that carry none: the same content always gets the same id."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return f"sha-{digest[:16]}"


def iter_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Yields (1-based line number, raw line without the newline)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for number, raw in enumerate(data.split(b"\n"), start=1):
        yield number, raw.rstrip(b"\r")


def decode_line(raw: bytes) -> tuple[str | None, str | None]:
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"


def require_text(record: dict[str, Any], key: str) -> tuple[str, str | None]:
    if key not in record:
        return "", f"missing field '{key}'"
    value = record[key]
    if not isinstance(value, str):
        return "", f"field '{key}' must be a string, got {type(value).__name__}"
    if not value.strip():
        return "", f"field '{key}' is empty"
    problem = text_problem(value)
    if problem:
        return "", f"field '{key}' {problem}"
    return value, None


def optional_text(
    record: dict[str, Any], key: str, max_length: int | None = None
) -> tuple[str, str | None]:
    value = record.get(key)
    if value is None:
        return "", None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return "", f"field '{key}' must be a string, got {type(value).__name__}"
    text = str(value)
    if max_length is not None and len(text) > max_length:
        return "", f"field '{key}' is longer than {max_length} characters"
    problem = text_problem(text)
    if problem:
        return "", f"field '{key}' {problem}"
    return text, None


def jsonl_record_to_item(record: Any, line: int) -> tuple[ParsedItem | None, list[str]]:
    """Validates one decoded JSONL record; returns the item or every problem found in it."""
    if not isinstance(record, dict):
        return None, [f"expected a JSON object, got {type(record).__name__}"]
    problems: list[str] = []
    unknown = sorted(set(record) - set(JSONL_REQUIRED) - set(JSONL_OPTIONAL))
    if unknown:
        problems.append(
            f"unknown field(s) {', '.join(repr(k) for k in unknown)} (put extra data in 'metadata')"
        )
    texts: dict[str, str] = {}
    for key in JSONL_REQUIRED:
        texts[key], problem = require_text(record, key)
        if problem:
            problems.append(problem)
    optional: dict[str, str] = {}
    limits = {
        "id": MAX_EXTERNAL_ID_LENGTH,
        "label": MAX_LABEL_LENGTH,
        "base_model": 200,
        "tuned_model": 200,
    }
    for key in ("id", "reference", "label", "task", "base_model", "tuned_model", "gold"):
        optional[key], problem = optional_text(record, key, limits.get(key))
        if problem:
            problems.append(problem)
    if "id" in record and not optional["id"].strip():
        problems.append("field 'id' is empty")
    if optional["task"] and optional["task"] not in TASK_TYPES:
        problems.append(
            f"field 'task' must be one of {', '.join(TASK_TYPES)}, got {optional['task']!r}"
        )
    if optional["gold"] and optional["gold"] not in PREFERENCES:
        problems.append(
            f"field 'gold' must be one of {', '.join(PREFERENCES)}, got {optional['gold']!r}"
        )
    metadata = record.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        problems.append(f"field 'metadata' must be an object, got {type(metadata).__name__}")
    elif (problem := json_problem_text(metadata)) is not None:
        problems.append(f"field 'metadata' {problem}")
    priority = record.get("priority", 0.0)
    if (problem := number_problem(priority)) is not None:
        # NaN would sort first in the queue, 10**400 does not fit a float.
        problems.append(f"field 'priority' {problem}")
        priority = 0.0
    if problems:
        return None, problems
    external_id = optional["id"].strip() or content_id(
        texts["prompt"], texts["base"], texts["tuned"]
    )
    return (
        ParsedItem(
            line=line,
            external_id=external_id,
            prompt=texts["prompt"],
            base=texts["base"],
            tuned=texts["tuned"],
            reference=optional["reference"],
            label=optional["label"],
            task_type=optional["task"],
            metadata=metadata,
            base_model=optional["base_model"],
            tuned_model=optional["tuned_model"],
            gold_preference=optional["gold"],
            priority=float(priority),
        ),
        [],
    )


def check_duplicates(
    items: Iterable[ParsedItem], file: str, collector: IssueCollector
) -> list[ParsedItem]:
    first_line: dict[str, int] = {}
    unique: list[ParsedItem] = []
    for item in items:
        if item.external_id in first_line:
            first = first_line[item.external_id]
            reason = f"duplicate id {item.external_id!r} (first on line {first})"
            collector.add(ImportIssue(file, item.line, reason))
            continue
        first_line[item.external_id] = item.line
        unique.append(item)
    return unique


def parse_jsonl(
    data: bytes, *, file: str, max_line_bytes: int = 1_000_000, max_issues: int = 50
) -> ParseResult:
    """Parses a JSONL pair file. Blank lines are ignored; every other line must be an item."""
    collector = IssueCollector(max_issues)
    parsed: list[ParsedItem] = []
    lines_read = 0
    for number, raw in iter_lines(data):
        if not raw.strip():
            continue
        lines_read += 1
        if len(raw) > max_line_bytes:
            collector.add(
                ImportIssue(
                    file,
                    number,
                    f"line is {len(raw):,} bytes, over the {max_line_bytes:,}-byte limit",
                )
            )
            continue
        text, problem = decode_line(raw)
        if problem or text is None:
            collector.add(ImportIssue(file, number, problem or "unreadable line"))
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            collector.add(
                ImportIssue(file, number, f"invalid JSON: {exc.msg} (column {exc.colno})")
            )
            continue
        except RecursionError:
            collector.add(ImportIssue(file, number, "invalid JSON: nested too deeply"))
            continue
        item, problems = jsonl_record_to_item(record, number)
        if item is None:
            collector.add(ImportIssue(file, number, "; ".join(problems)))
            continue
        parsed.append(item)
    if lines_read == 0:
        collector.add(ImportIssue(file, None, "the file holds no items"))
    unique = check_duplicates(parsed, file, collector)
    return ParseResult(
        unique, collector.issues, collector.bad_lines, lines_read, collector.bad_by_file
    )


def iter_json_array(text: str) -> Iterator[tuple[int, Any]]:
    """Yields (line where the element starts, element) for a top-level JSON array.

    Element positions give line numbers for errors, which `json.loads` alone would lose.
    Raises json.JSONDecodeError on a syntax error (with its line).
    """
    decoder = json.JSONDecoder()
    length = len(text)
    index = 0

    def skip_ws(position: int) -> int:
        while position < length and text[position] in " \t\r\n":
            position += 1
        return position

    index = skip_ws(index)
    if index >= length or text[index] != "[":
        raise json.JSONDecodeError("expected a JSON array of objects", text, index)
    index = skip_ws(index + 1)
    if index < length and text[index] == "]":
        return
    while True:
        value, end = decoder.raw_decode(text, index)
        yield text.count("\n", 0, index) + 1, value
        index = skip_ws(end)
        if index < length and text[index] == ",":
            index = skip_ws(index + 1)
            continue
        if index < length and text[index] == "]":
            if skip_ws(index + 1) != length:
                raise json.JSONDecodeError("extra data after the array", text, skip_ws(index + 1))
            return
        raise json.JSONDecodeError("expected ',' or ']'", text, index)


@dataclass(frozen=True)
class AlpacaRow:
    line: int
    instruction: str
    output: str
    generator: str
    extra: dict[str, Any]


def parse_alpaca_file(data: bytes, *, file: str, collector: IssueCollector) -> list[AlpacaRow]:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        collector.add(ImportIssue(file, line, f"not valid UTF-8 (byte 0x{data[exc.start]:02x})"))
        return []
    rows: list[AlpacaRow] = []
    try:
        for line, element in iter_json_array(text):
            if not isinstance(element, dict):
                collector.add(
                    ImportIssue(file, line, f"expected an object, got {type(element).__name__}")
                )
                continue
            problems = []
            values = {}
            for key in ("instruction", "output"):
                values[key], problem = require_text(element, key)
                if problem:
                    problems.append(problem)
            generator, problem = optional_text(element, "generator", 200)
            if problem:
                problems.append(problem)
            if problems:
                collector.add(ImportIssue(file, line, "; ".join(problems)))
                continue
            extra = {
                k: v for k, v in element.items() if k not in ("instruction", "output", "generator")
            }
            if (problem := json_problem_text(extra)) is not None:
                collector.add(ImportIssue(file, line, f"field '(extra fields)' {problem}"))
                continue
            rows.append(AlpacaRow(line, values["instruction"], values["output"], generator, extra))
    except json.JSONDecodeError as exc:
        collector.add(
            ImportIssue(file, exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})")
        )
    except RecursionError:
        collector.add(ImportIssue(file, None, "invalid JSON: nested too deeply"))
    return rows


UNMATCHED_CHOICES = ("error", "skip")
UNMATCHED_FIX = (
    "to import only the instructions both files share, use --unmatched skip "
    "(API and page: unmatched=skip)"
)


def instruction_excerpt(instruction: str, limit: int = 60) -> str:
    flat = " ".join(instruction.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 1] + "…")


def parse_alpaca_pair(
    base_data: bytes,
    tuned_data: bytes,
    *,
    base_file: str,
    tuned_file: str,
    max_issues: int = 50,
    unmatched: str = "error",
) -> ParseResult:
    """Joins two AlpacaEval-style output files (lists of {instruction, output, generator}) on
    `instruction`; an instruction may appear once per file.

    An instruction found in only one file is, with `unmatched="error"` (the default), a bad
    line of the file that has it (its line, and the fix); with `unmatched="skip"` it is left
    out and listed in `skipped`, and the instructions both files share are imported. Raises
    ValueError for another `unmatched`."""
    if unmatched not in UNMATCHED_CHOICES:
        raise ValueError(f"unmatched must be one of {', '.join(UNMATCHED_CHOICES)}")
    collector = IssueCollector(max_issues)
    base_rows = parse_alpaca_file(base_data, file=base_file, collector=collector)
    tuned_rows = parse_alpaca_file(tuned_data, file=tuned_file, collector=collector)
    for name, rows in ((base_file, base_rows), (tuned_file, tuned_rows)):
        seen: dict[str, int] = {}
        for row in rows:
            if row.instruction in seen:
                collector.add(
                    ImportIssue(
                        name,
                        row.line,
                        f"duplicate instruction (first on line {seen[row.instruction]})",
                    )
                )
                continue
            seen[row.instruction] = row.line
    skipped: list[ImportIssue] = []
    sides = (
        (base_file, base_rows, tuned_file, {row.instruction for row in tuned_rows}),
        (tuned_file, tuned_rows, base_file, {row.instruction for row in base_rows}),
    )
    for name, rows, other_file, other_instructions in sides:
        for row in rows:
            if row.instruction in other_instructions:
                continue
            reason = (
                f"instruction {instruction_excerpt(row.instruction)} has no match in {other_file}"
            )
            if unmatched == "skip":
                skipped.append(ImportIssue(name, row.line, reason))
            else:
                collector.add(ImportIssue(name, row.line, f"{reason}; {UNMATCHED_FIX}"))
    items: list[ParsedItem] = []
    tuned_by_instruction = {row.instruction: row for row in tuned_rows}
    for row in base_rows:
        tuned = tuned_by_instruction.get(row.instruction)
        if tuned is None:
            continue
        extra_id = row.extra.get("id")
        external_id = str(extra_id) if extra_id not in (None, "") else content_id(row.instruction)
        metadata = {k: v for k, v in row.extra.items() if k != "id"}
        items.append(
            ParsedItem(
                line=row.line,
                external_id=external_id,
                prompt=row.instruction,
                base=row.output,
                tuned=tuned.output,
                metadata=metadata,
                base_model=row.generator,
                tuned_model=tuned.generator,
            )
        )
    if not base_rows and not tuned_rows and collector.bad_lines == 0:
        collector.add(ImportIssue(base_file, None, "the files hold no items"))
    elif not items and skipped and collector.bad_lines == 0:
        collector.add(
            ImportIssue(base_file, None, f"{base_file} and {tuned_file} share no instruction")
        )
    unique = check_duplicates(items, base_file, collector)
    return ParseResult(
        unique,
        collector.issues,
        collector.bad_lines,
        len(base_rows) + len(tuned_rows),
        collector.bad_by_file,
        skipped,
    )
