"""Adaptive overlap rule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.stats.adaptive import additional_votes_needed, is_split


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ([0, 0, 0, 0], 3),  # nothing yet: the base overlap
        ([0, 1, 0, 0], 2),
        ([1, 1, 0, 0], 1),  # below base overlap anyway
        ([0, 3, 0, 0], 0),  # unanimous
        ([1, 2, 0, 0], 0),  # clear plurality
        ([1, 1, 1, 0], 1),  # three-way split -> one more
        ([2, 2, 0, 0], 1),
        ([1, 1, 0, 1], 1),  # tie + both-bad merged: 1-1-1 split
        ([1, 0, 1, 1], 0),  # tie + both-bad merged: 2 "no preference" vs 1 base
        ([2, 2, 1, 0], 0),  # split but at the maximum of 5
        ([3, 3, 0, 0], 0),  # beyond the maximum
    ],
)
def test_rule(counts: list[int], expected: int) -> None:
    assert additional_votes_needed(counts, base_overlap=3, max_overlap=5) == expected


def test_options() -> None:
    # 2-1-1: a unique plurality, but no strict majority.
    assert additional_votes_needed([2, 1, 1, 0], base_overlap=3, max_overlap=6) == 0
    assert (
        additional_votes_needed(
            [2, 1, 1, 0], base_overlap=3, max_overlap=6, require_strict_majority=True
        )
        == 1
    )
    assert not is_split([1, 0, 1, 1])  # merged: 2 no-preference vs 1 base
    assert is_split([1, 0, 1, 1], merge_tie_and_both_bad=False)
    assert not is_split([0, 0, 0, 0])
    assert is_split([3, 3])  # any nominal coding


@settings(max_examples=100, deadline=None)
@given(
    counts=st.lists(st.integers(0, 6), min_size=4, max_size=4),
    k=st.integers(1, 5),
    extra=st.integers(0, 4),
)
def test_never_exceeds_maximum(counts: list[int], k: int, extra: int) -> None:
    more = additional_votes_needed(counts, base_overlap=k, max_overlap=k + extra)
    n = sum(counts)
    assert more >= 0
    assert n + more <= max(n, k + extra)
    if n < k:
        assert n + more == k


@pytest.mark.parametrize(
    ("counts", "kwargs", "message"),
    [
        ([1, 0], {"base_overlap": 0, "max_overlap": 3}, "base_overlap"),
        ([1, 0], {"base_overlap": 3, "max_overlap": 2}, "max_overlap"),
        ([-1, 0], {"base_overlap": 1, "max_overlap": 2}, "non-negative"),
        ([0.5, 0], {"base_overlap": 1, "max_overlap": 2}, "whole"),
        ([], {"base_overlap": 1, "max_overlap": 2}, "non-empty"),
        ([1, 0], {"base_overlap": 1.5, "max_overlap": 2}, "integer"),
    ],
)
def test_bad_input(counts: list, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        additional_votes_needed(counts, **kwargs)
