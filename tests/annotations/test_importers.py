from __future__ import annotations

import json

from annotations.importers import parse_alpaca_pair, parse_jsonl


def line(**fields) -> str:
    return json.dumps(fields)


GOOD = {"id": "a", "prompt": "p", "base": "b", "tuned": "t"}


def test_valid_jsonl_with_optional_fields() -> None:
    data = "\n".join(
        [
            line(**GOOD, reference="r", label="x", task="classification", metadata={"k": 1}),
            "",
            line(id="b", prompt="p2", base="b2", tuned="t2", gold="tuned", priority=2),
        ]
    ).encode()
    result = parse_jsonl(data, file="f.jsonl")
    assert result.ok
    assert [i.external_id for i in result.items] == ["a", "b"]
    assert result.items[0].task_type == "classification"
    assert result.items[0].metadata == {"k": 1}
    assert result.items[1].gold_preference == "tuned"
    assert result.items[1].line == 3


def test_every_bad_line_is_reported_with_file_and_line() -> None:
    data = "\n".join(
        [
            line(**GOOD),
            "{not json",
            line(id="c", prompt="", base="b", tuned="t"),
            line(id="d", prompt="p", base="b"),
            line(**GOOD),
            line(id="e", prompt="p", base="b", tuned="t", colour="red"),
            line(id="f", prompt="p", base="b", tuned="t", task="poetry"),
        ]
    ).encode()
    result = parse_jsonl(data, file="pairs.jsonl")
    assert not result.ok
    messages = [str(issue) for issue in result.issues]
    assert messages[0].startswith("pairs.jsonl:2: invalid JSON")
    assert "pairs.jsonl:3: field 'prompt' is empty" in messages
    assert "pairs.jsonl:4: missing field 'tuned'" in messages
    assert any(m.startswith("pairs.jsonl:6: unknown field(s) 'colour'") for m in messages)
    assert any(m.startswith("pairs.jsonl:7: field 'task' must be one of") for m in messages)
    assert "pairs.jsonl:5: duplicate id 'a' (first on line 1)" in messages
    assert result.bad_lines == 6


def test_non_utf8_and_oversized_lines() -> None:
    data = line(**GOOD).encode() + b"\n" + b'{"id": "x\xff"}' + b"\n" + b"x" * 2000
    result = parse_jsonl(data, file="f", max_line_bytes=1000)
    messages = [str(i) for i in result.issues]
    assert messages[0] == "f:2: not valid UTF-8 (byte 0xff at column 10)"
    assert messages[1].startswith("f:3: line is 2,000 bytes, over the 1,000-byte limit")


def test_issue_list_is_capped_but_every_bad_line_counted() -> None:
    data = "\n".join("{bad" for _ in range(120)).encode()
    result = parse_jsonl(data, file="f", max_issues=50)
    assert len(result.issues) == 50
    assert result.bad_lines == 120


def test_missing_ids_get_stable_content_ids() -> None:
    data = line(prompt="p", base="b", tuned="t").encode()
    first = parse_jsonl(data, file="f").items[0].external_id
    assert first == parse_jsonl(data, file="g").items[0].external_id
    assert first.startswith("sha-")


def test_empty_file_is_an_error() -> None:
    result = parse_jsonl(b"\n\n", file="empty.jsonl")
    assert [str(i) for i in result.issues] == ["empty.jsonl: the file holds no items"]


def test_alpaca_pair_joins_on_instruction() -> None:
    base = json.dumps(
        [
            {"instruction": "q1", "output": "b1", "generator": "base-m"},
            {"instruction": "q2", "output": "b2", "generator": "base-m"},
        ],
        indent=1,
    ).encode()
    tuned = json.dumps(
        [
            {"instruction": "q2", "output": "t2", "generator": "tuned-m"},
            {"instruction": "q1", "output": "t1", "generator": "tuned-m"},
        ]
    ).encode()
    result = parse_alpaca_pair(base, tuned, base_file="b.json", tuned_file="t.json")
    assert result.ok
    by_prompt = {i.prompt: i for i in result.items}
    assert by_prompt["q1"].base == "b1" and by_prompt["q1"].tuned == "t1"
    assert by_prompt["q2"].tuned_model == "tuned-m"


def test_alpaca_reports_unmatched_and_bad_rows_with_lines() -> None:
    base = b'[\n {"instruction": "q1", "output": "b1"},\n {"instruction": "q9", "output": "b9"},\n {"output": "x"}\n]'
    tuned = b'[{"instruction": "q1", "output": "t1"}]'
    result = parse_alpaca_pair(base, tuned, base_file="b.json", tuned_file="t.json")
    messages = [str(i) for i in result.issues]
    assert "b.json:4: missing field 'instruction'" in messages
    assert any(m.startswith("b.json:3: instruction 'q9' has no match in t.json") for m in messages)


def test_alpaca_syntax_error_has_a_line() -> None:
    result = parse_alpaca_pair(
        b'[\n{"instruction": "q"\n', b"[]", base_file="b.json", tuned_file="t.json"
    )
    assert str(result.issues[0]).startswith("b.json:3: invalid JSON")


def test_nul_characters_are_refused_with_file_line_and_field() -> None:
    # PostgreSQL stores no U+0000 in text or jsonb: caught at parse time, not as a 500 later.
    data = "\n".join(
        [
            line(**GOOD),
            line(id="n1", prompt="p\u0000q", base="b", tuned="t"),
            line(id="n2", prompt="p", base="b", tuned="t", reference="r\u0000"),
            line(id="n3", prompt="p", base="b", tuned="t", metadata={"k": ["x\u0000"]}),
        ]
    ).encode()
    messages = [str(i) for i in parse_jsonl(data, file="nul.jsonl").issues]
    assert messages == [
        "nul.jsonl:2: field 'prompt' contains a NUL character (U+0000), which cannot be stored",
        "nul.jsonl:3: field 'reference' contains a NUL character (U+0000), which cannot be stored",
        "nul.jsonl:4: field 'metadata' at k[0]: contains a NUL character (U+0000), which cannot be stored",
    ]


def test_alpaca_nul_characters_are_refused() -> None:
    base = json.dumps([{"instruction": "i", "output": "o\u0000", "generator": "b"}]).encode()
    tuned = json.dumps([{"instruction": "i", "output": "o", "generator": "t"}]).encode()
    result = parse_alpaca_pair(base, tuned, base_file="b.json", tuned_file="t.json")
    assert not result.ok
    assert "field 'output' contains a NUL character" in str(result.issues[0])


def test_priorities_that_are_not_finite_small_numbers_are_refused() -> None:
    head = '{"id": "x", "prompt": "p", "base": "b", "tuned": "t", "priority": '
    lines = [head + "1" + "0" * 400 + "}", head + "NaN}", head + "Infinity}", head + "-1e308}"]
    messages = [str(i) for i in parse_jsonl("\n".join(lines).encode(), file="p.jsonl").issues]
    assert len(messages) == 4
    assert "p.jsonl:1: field 'priority' must be between" in messages[0]
    assert "p.jsonl:2: field 'priority' must be a finite number" in messages[1]
    assert "p.jsonl:3: field 'priority' must be a finite number" in messages[2]
    assert "p.jsonl:4: field 'priority' must be between" in messages[3]


def test_deep_nesting_is_a_line_issue_not_a_crash() -> None:
    head = '{"prompt": "p", "base": "b", "tuned": "t", "metadata": {"a": '
    very_deep = head + "[" * 100_000 + "]" * 100_000 + "}}"
    deep = head + "[" * 40 + "]" * 40 + "}}"
    result = parse_jsonl((very_deep + "\n" + deep).encode(), file="d.jsonl")
    messages = [str(i) for i in result.issues]
    assert messages[0] == "d.jsonl:1: invalid JSON: nested too deeply"
    assert messages[1].startswith("d.jsonl:2: field 'metadata' at a")
    assert "nested deeper than 32 levels" in messages[1]


def test_lone_surrogates_are_refused_in_text_and_metadata() -> None:
    data = "\n".join(
        [
            '{"prompt": "p\\ud800", "base": "b", "tuned": "t"}',
            '{"id": "m", "prompt": "p", "base": "b", "tuned": "t", "metadata": {"\\udfff": 1}}',
            '{"id": "r", "prompt": "p", "base": "b", "tuned": "t", "reference": "\\ud83d"}',
        ]
    ).encode()
    messages = [str(i) for i in parse_jsonl(data, file="s.jsonl").issues]
    assert messages == [
        "s.jsonl:1: field 'prompt' contains a lone UTF-16 surrogate, which is not valid Unicode",
        "s.jsonl:2: field 'metadata' a key contains a lone UTF-16 surrogate, which is not valid Unicode",
        "s.jsonl:3: field 'reference' contains a lone UTF-16 surrogate, which is not valid Unicode",
    ]
