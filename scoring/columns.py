"""Numeric query results as numpy columns, for reads of a million rows.

Reading a million rows through a cursor builds a Python tuple per row and an object per value:
over a second of CPU and hundreds of MiB before numpy sees them. On PostgreSQL,
`numeric_columns` has the database send each column as blocks of fixed-width big-endian values
(``string_agg(int8send(x), '')`` over a bounded group of rows), which numpy reads in place: a
few values per group, whatever the number of rows. All aggregates of one group see its rows in
the same order, so the columns stay aligned. The groups (``chunk_by``) keep every message
small: libpq keeps its input buffer as large as the largest message for the life of the
connection, so one message holding a whole column would keep tens of MiB per pooled
connection. The rows stream (one group in memory at a time). Other databases (SQLite in
development and in most tests) return rows, turned into the same columns.

Every expression must be non-NULL (coalesce it): ``string_agg`` skips NULLs, which would shift
the rest of a column; a group whose columns come back of different lengths raises rather than
misaligning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from django.db import connection

# Column kind: (PostgreSQL type and its send function's prefix, big-endian numpy type, result).
KINDS = {
    "int8": ("int8", ">i8", np.int64),
    "int4": ("int4", ">i4", np.int32),
    "int2": ("int2", ">i2", np.int16),
    "float8": ("float8", ">f8", np.float64),
}
# Rows per group (message) when `chunk_by` is a row id divided by this.
CHUNK_ROWS = 16_384

Columns = dict[str, np.ndarray]


def numeric_columns(
    source: str,
    params: Sequence[object],
    columns: Mapping[str, tuple[str, str]],
    *,
    chunk_by: str | None = None,
    group_by: Sequence[str] = (),
) -> list[tuple[tuple, Columns]]:
    """Runs ``SELECT <columns> <source>`` and returns the columns as native-endian arrays of
    the kind's width (int64, int32, int16 or float64).

    Args:
        source: the ``FROM ... WHERE ...`` part, with ``%s`` placeholders for `params`. Built
            from model metadata and constants only, never from user input.
        params: its parameters.
        columns: name -> (SQL expression, kind), kind one of `KINDS`; expressions must not be
            NULL (see the module docstring).
        chunk_by: an integer SQL expression that splits the rows into groups of at most a few
            ten thousand rows, e.g. ``f"j.id / {CHUNK_ROWS}"`` (PostgreSQL only), unless
            `group_by` already keeps the groups that small.
        group_by: SQL expressions to group the rows by: one entry per group, in the order of
            the group keys (columns that repeat within a group need not be sent per row: a
            few keys with few values also let PostgreSQL hash the groups instead of sorting
            the rows).

    Returns:
        ``[(group key, {name: array})]``, the key a tuple of the `group_by` values (``()``
        without grouping: then one entry, with empty arrays when no row matched). The rows come
        in no particular order (sort them by a column when order matters).
    """
    for _, kind in columns.values():
        if kind not in KINDS:
            raise ValueError(f"unknown column kind {kind!r}")
    names = list(columns)
    parts: dict[tuple, list[Columns]] = {}
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            blocks = ", ".join(
                f"string_agg({KINDS[kind][0]}send(({expr})::{KINDS[kind][0]}), '')"
                for expr, kind in columns.values()
            )
            keys = ", ".join([*group_by, *([chunk_by] if chunk_by else [])])
            select = f"SELECT {', '.join(group_by) + ', ' if group_by else ''}{blocks} {source}"
            if keys:
                select += f" GROUP BY {keys}"
            # psycopg's stream: one group's message in memory at a time (Django's cursor has no
            # streaming; the statement is not in Django's query log).
            for row in cursor.cursor.stream(select, params):
                key, values = tuple(row[: len(group_by)]), row[len(group_by) :]
                # Views of the received bytes; converted once per column below.
                decoded = {
                    name: np.frombuffer(block, KINDS[kind][1])
                    for name, block, (_, kind) in zip(names, values, columns.values(), strict=True)
                }
                if len({column.size for column in decoded.values()}) > 1:
                    raise ValueError(f"a NULL in one of the columns {names} of {source!r}")
                parts.setdefault(key, []).append(decoded)
        else:
            select = ", ".join([*group_by, *(expr for expr, _ in columns.values())])
            cursor.execute(f"SELECT {select} {source}", params)
            rows: dict[tuple, list] = {}
            for row in cursor.fetchall():
                rows.setdefault(tuple(row[: len(group_by)]), []).append(row[len(group_by) :])
            for key, table in rows.items():
                parts[key] = [
                    {
                        name: np.array([r[k] for r in table], dtype=KINDS[kind][2])
                        for k, (name, (_, kind)) in enumerate(columns.items())
                    }
                ]
    if not group_by:
        parts.setdefault((), [])
    out = []
    for key in sorted(parts):
        table = {}
        for name, (_, kind) in columns.items():
            pieces = [part.pop(name) for part in parts[key]]
            table[name] = np.concatenate(pieces).astype(KINDS[kind][2]) if pieces else None
            if table[name] is None:
                table[name] = np.zeros(0, dtype=KINDS[kind][2])
        out.append((key, table))
    return out
