"""Checks that a decoded JSON value can be stored and walked safely. Pure Python, no Django.

Three things a JSON document may legally hold that the database or our own code cannot take:

* U+0000: PostgreSQL stores it neither in `text` nor in `jsonb`;
* a lone UTF-16 surrogate (`"\\ud800"` decodes to one): it has no UTF-8 encoding, so the
  database driver fails while sending it;
* deep nesting: every recursive walk (serialisation, hashing, the database's own parser) has a
  limit, and Python raises RecursionError near 1,000 levels.

Each is refused up front with a message that names where it is, so the caller can answer 400
(or a `file:line` issue) instead of failing half-way through a write.
"""

from __future__ import annotations

import math
import re
from typing import Any

NUL = "\x00"
MAX_JSON_DEPTH = 32
MAX_JSON_NODES = 1_000_000
_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored, or None."""
    if NUL in text:
        return "contains a NUL character (U+0000), which cannot be stored"
    if _SURROGATE.search(text):
        return "contains a lone UTF-16 surrogate, which is not valid Unicode"
    return None


def number_problem(value: Any, *, limit: float = 1e9) -> str | None:
    """Why `value` is not a usable finite number of at most `limit` in size, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a number"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number (not NaN or Infinity)"
    if abs(value) > limit:
        return f"must be between -{limit:g} and {limit:g}"
    return None


def json_problem(
    value: Any,
    *,
    max_depth: int = MAX_JSON_DEPTH,
    max_nodes: int = MAX_JSON_NODES,
    allow_non_finite: bool = False,
) -> tuple[str, str] | None:
    """The first reason a decoded JSON value cannot be stored, as (path, reason) with a path
    like `a.b[3]` (empty for the value itself), or None. Walks iteratively, so a value nested
    deeper than Python's recursion limit is reported instead of crashing the check.
    `allow_non_finite` lets NaN and infinities through (for a caller that reports them itself).
    """
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    nodes = 0
    while stack:
        current, depth, path = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            return path, f"more than {max_nodes:,} values"
        if isinstance(current, str):
            problem = text_problem(current)
            if problem:
                return path, problem
        elif isinstance(current, float) and not (allow_non_finite or math.isfinite(current)):
            return path, "NaN and Infinity cannot be stored"
        elif isinstance(current, dict | list):
            if depth >= max_depth:
                return path, f"nested deeper than {max_depth} levels"
            if isinstance(current, dict):
                for key, child in current.items():
                    key_text = str(key)
                    problem = text_problem(key_text)
                    if problem:
                        return path, f"a key {problem}"
                    stack.append((child, depth + 1, f"{path}.{key_text}" if path else key_text))
            else:
                for index, child in enumerate(current):
                    stack.append((child, depth + 1, f"{path}[{index}]"))
    return None


def json_problem_text(value: Any, **limits: Any) -> str | None:
    """`json_problem` as one sentence (`"at a.b[3]: reason"`), or None."""
    found = json_problem(value, **limits)
    if found is None:
        return None
    path, reason = found
    return f"at {path}: {reason}" if path else reason
