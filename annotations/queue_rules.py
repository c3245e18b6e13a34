"""The rating queue's rules, each written once: when an assignment holds one of its item's
places, how many places an item has, and how long a pair takes to read.

The queue states them in three forms (plain SQL for the hot path in `queue_sql`, ORM `Q` for
selectors, Python for the services); all three are built here from the same definitions so
they cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import F, Q, Value
from django.db.models.expressions import CombinedExpression

from annotations.models import Assignment, AssignmentState

ASSIGNMENT = Assignment._meta.db_table

JUDGED = AssignmentState.JUDGED.value
LEASED = AssignmentState.LEASED.value

# --- "this assignment holds a place" ------------------------------------------------------
# An assignment holds one of its item's places while it is judged, or leased and the lease
# has not expired. Skipped assignments and expired leases hold none.


def holds_a_place_q(*, now: datetime, prefix: str = "") -> Q:
    """The rule as an ORM filter on Assignment (`prefix` for a related lookup)."""
    return Q(**{f"{prefix}state": JUDGED}) | Q(
        **{f"{prefix}state": LEASED, f"{prefix}leased_until__gt": now}
    )


def holds_a_place_sql(alias: str) -> str:
    """The rule as SQL on the assignment table aliased `alias`; takes one parameter: now."""
    return (
        f"({alias}.state = '{JUDGED}' "
        f"OR ({alias}.state = '{LEASED}' AND {alias}.leased_until > %s))"
    )


# --- capacity: how many places an item has -----------------------------------------------
# k (the study's overlap) plus the extra votes adaptive overlap added when its votes split.
# Gold items have no cap: every rater meets each gold item once.


def item_capacity(*, overlap: int, extra_votes: int, is_gold: bool) -> int | None:
    """Places of an item; None for a gold item (no cap)."""
    return None if is_gold else overlap + extra_votes


def item_capacity_expr(*, overlap: int) -> CombinedExpression:
    """An item's places as an ORM expression on Item (non-gold items)."""
    return Value(overlap) + F("extra_votes")


def item_capacity_sql(*, item: str, overlap: str = "%s") -> str:
    """An item's places as SQL (non-gold items); `overlap` is the study's k as SQL (by
    default a parameter)."""
    return f"({overlap} + {item}.extra_votes)"


def places_held_sql(*, item: str, alias: str = "c") -> str:
    """SQL: how many assignments hold a place on the item; takes one parameter: now."""
    return (
        f"(SELECT COUNT(*) FROM {ASSIGNMENT} {alias} WHERE {alias}.item_id = {item}.id "
        f"AND {holds_a_place_sql(alias)})"
    )


def has_room_sql(*, item: str, overlap: str = "%s") -> str:
    """SQL: the (non-gold) item holds fewer places than its capacity. Parameters: now, then
    the overlap when `overlap` is the default parameter."""
    return f"{places_held_sql(item=item)} < {item_capacity_sql(item=item, overlap=overlap)}"


def has_room(*, places_held: int, capacity: int | None) -> bool:
    return capacity is None or places_held < capacity


# --- reading time -------------------------------------------------------------------------

READING_BASE_MS = 1_000
READING_MS_PER_100_CHARS = 15


def min_reading_ms(*, min_time_ms: int | None, text_chars: int) -> int:
    """The fastest plausible judgment of a pair, in ms: the study's `min_time_ms` if set
    (0 turns the flag off), else 1 s plus 15 ms per 100 characters of both outputs."""
    if min_time_ms is not None:
        return min_time_ms
    return READING_BASE_MS + READING_MS_PER_100_CHARS * (max(text_chars, 0) // 100)


def flagged_fast(*, time_ms: int | None, threshold_ms: int) -> bool:
    """A judgment faster than the threshold is flagged for rater quality, never refused."""
    return time_ms is not None and threshold_ms > 0 and time_ms < threshold_ms


# --- undo ---------------------------------------------------------------------------------

# How long after saving a rater may take a judgment back (the page's `u`).
WITHDRAW_SECONDS = 60
# The rating page ignores key presses this soon after a pair first paints: a double press or
# a held key must not judge a pair nobody has seen.
KEY_GUARD_MS = 300
