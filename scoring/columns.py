"""Numeric query results as numpy columns, for reads of a million rows.

Reading a million rows through a cursor builds a Python tuple per row and an object per value:
over a second of CPU and hundreds of MiB before numpy sees them. On PostgreSQL,
`numeric_columns` has the database send each column as one bytea of fixed-width big-endian
values (``string_agg(int8send(x), '')``), which numpy reads in place: a few values in all,
whatever the number of rows. All aggregates of one query see the rows in the same order, so the
columns stay aligned. Other databases (SQLite in development and in most tests) return rows,
turned into the same columns.

Every expression must be non-NULL (coalesce it): ``string_agg`` skips NULLs, which would shift
the rest of a column; a column that comes back shorter than the others raises rather than
misaligning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from django.db import connection

# Column kind: (PostgreSQL type and its send function's prefix, big-endian numpy type, result).
KINDS = {
    "int8": ("int8", ">i8", np.int64),
    "int2": ("int2", ">i2", np.int64),
    "float8": ("float8", ">f8", np.float64),
}

Columns = dict[str, np.ndarray]


def numeric_columns(
    source: str,
    params: Sequence[object],
    columns: Mapping[str, tuple[str, str]],
    *,
    group_by: Sequence[str] = (),
) -> list[tuple[tuple, Columns]]:
    """Runs ``SELECT <columns> <source>`` and returns the columns as arrays (int64 or float64).

    Args:
        source: the ``FROM ... WHERE ...`` part, with ``%s`` placeholders for `params`. Built
            from model metadata and constants only, never from user input.
        params: its parameters.
        columns: name -> (SQL expression, kind), kind one of `KINDS`; expressions must not be
            NULL (see the module docstring).
        group_by: SQL expressions to group the rows by: one entry per group, in the order of
            the group keys.

    Returns:
        ``[(group key, {name: array})]``, the key a tuple of the `group_by` values (``()``
        without grouping: then one entry, with empty arrays when no row matched). The rows come
        in no particular order (sort them by a column when order matters).
    """
    for _, kind in columns.values():
        if kind not in KINDS:
            raise ValueError(f"unknown column kind {kind!r}")
    names = list(columns)
    keys = ", ".join(group_by)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            blocks = ", ".join(
                f"string_agg({KINDS[kind][0]}send(({expr})::{KINDS[kind][0]}), '')"
                for expr, kind in columns.values()
            )
            select = f"SELECT {keys + ', ' if keys else ''}{blocks} {source}"
            if keys:
                select += f" GROUP BY {keys} ORDER BY {keys}"
            cursor.execute(select, params)
            groups = []
            for row in cursor.fetchall():
                key, values = tuple(row[: len(group_by)]), row[len(group_by) :]
                decoded = {
                    name: np.frombuffer(bytes(block or b""), KINDS[kind][1]).astype(KINDS[kind][2])
                    for name, block, (_, kind) in zip(names, values, columns.values(), strict=True)
                }
                if len({column.size for column in decoded.values()}) > 1:
                    raise ValueError(f"a NULL in one of the columns {names} of {source!r}")
                groups.append((key, decoded))
            if not group_by and not groups:  # pragma: no cover - an aggregate always has a row
                groups = [((), _empty(columns))]
            return groups
        select = ", ".join([*group_by, *(expr for expr, _ in columns.values())])
        cursor.execute(f"SELECT {select} {source}", params)
        rows = cursor.fetchall()
    by_key: dict[tuple, list] = {}
    for row in rows:
        by_key.setdefault(tuple(row[: len(group_by)]), []).append(row[len(group_by) :])
    if not group_by:
        by_key.setdefault((), [])
    out = []
    for key in sorted(by_key):
        table = by_key[key]
        out.append(
            (
                key,
                {
                    name: np.array([r[k] for r in table], dtype=KINDS[kind][2])
                    for k, (name, (_, kind)) in enumerate(columns.items())
                },
            )
        )
    return out


def _empty(columns: Mapping[str, tuple[str, str]]) -> Columns:
    return {name: np.zeros(0, dtype=KINDS[kind][2]) for name, (_, kind) in columns.items()}
