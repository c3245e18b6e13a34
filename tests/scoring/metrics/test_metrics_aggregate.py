"""Paired bootstrap CI and item aggregation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.metrics import aggregate
from scoring.metrics.aggregate import aligned_pairs, item_means, paired_delta_ci
from scoring.metrics.registry import ItemScore


def test_means_and_delta() -> None:
    result = paired_delta_ci([0, 0, 1, 1], [1, 1, 1, 0], rng=np.random.default_rng(0))
    assert (result.mean_base, result.mean_tuned, result.delta) == (0.5, 0.75, 0.25)
    mean_base, mean_tuned, delta, (low, high) = result  # tuple unpacking works
    assert low <= delta <= high


def test_constant_difference_gives_zero_width_interval() -> None:
    result = paired_delta_ci([1.0, 2.0, 5.0], [1.5, 2.5, 5.5], rng=np.random.default_rng(1))
    assert result.delta == pytest.approx(0.5)
    assert result.ci == pytest.approx((0.5, 0.5))


def test_deterministic_for_a_seed_and_varies_across_seeds() -> None:
    base = np.random.default_rng(10).normal(size=60)
    tuned = base + np.random.default_rng(11).normal(0.2, 1.0, size=60)
    a = paired_delta_ci(base, tuned, rng=np.random.default_rng(3))
    b = paired_delta_ci(base, tuned, rng=np.random.default_rng(3))
    c = paired_delta_ci(base, tuned, rng=np.random.default_rng(4))
    assert a == b
    assert a.ci != c.ci


def test_interval_width_matches_normal_theory() -> None:
    # Differences ~ N(0.5, 1), n = 400: standard error 0.05, so a 95% interval is ~0.196 wide.
    rng = np.random.default_rng(7)
    base = rng.normal(size=400)
    tuned = base + rng.normal(0.5, 1.0, size=400)
    result = paired_delta_ci(base, tuned, n_resamples=4000, rng=np.random.default_rng(8))
    low, high = result.ci
    assert low < result.delta < high
    assert 0.16 < high - low < 0.23
    narrower = paired_delta_ci(
        base, tuned, n_resamples=4000, rng=np.random.default_rng(8), confidence=0.5
    )
    assert narrower.ci[1] - narrower.ci[0] < (high - low) / 2


def test_chunking_does_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    base = np.arange(30, dtype=float)
    tuned = base + np.sin(base)
    whole = paired_delta_ci(base, tuned, rng=np.random.default_rng(5))
    monkeypatch.setattr(aggregate, "_CHUNK_ELEMENTS", 100)  # 3 resamples per chunk
    chunked = paired_delta_ci(base, tuned, rng=np.random.default_rng(5))
    assert whole == chunked


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-100, 100), min_size=2, max_size=40),
    st.floats(-10, 10),
    st.integers(0, 2**32 - 1),
)
def test_shifting_tuned_shifts_delta_and_interval(
    values: list[float], shift: float, seed: int
) -> None:
    base = np.asarray(values)
    tuned = base[::-1].copy()
    plain = paired_delta_ci(base, tuned, n_resamples=200, rng=np.random.default_rng(seed))
    shifted = paired_delta_ci(base, tuned + shift, n_resamples=200, rng=np.random.default_rng(seed))
    assert shifted.delta == pytest.approx(plain.delta + shift, abs=1e-6)
    assert shifted.ci[0] == pytest.approx(plain.ci[0] + shift, abs=1e-6)
    assert shifted.ci[1] == pytest.approx(plain.ci[1] + shift, abs=1e-6)


def test_inputs_not_mutated() -> None:
    base, tuned = [1.0, 2.0, 3.0], [2.0, 2.0, 2.0]
    paired_delta_ci(base, tuned, rng=np.random.default_rng(0))
    assert base == [1.0, 2.0, 3.0] and tuned == [2.0, 2.0, 2.0]


@pytest.mark.parametrize(
    ("base", "tuned", "kwargs", "message"),
    [
        ([1.0], [2.0], {}, "at least 2"),
        ([1.0, 2.0], [1.0], {}, "pairs needed"),
        ([1.0, float("nan")], [1.0, 2.0], {}, "NaN"),
        ([1.0, 2.0], [1.0, 2.0], {"n_resamples": 0}, "n_resamples"),
        ([1.0, 2.0], [1.0, 2.0], {"confidence": 1.0}, "confidence"),
        ([[1.0, 2.0]], [[1.0, 2.0]], {}, "flat"),
    ],
)
def test_bad_input_raises(
    base: list[float], tuned: list[float], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        paired_delta_ci(base, tuned, rng=np.random.default_rng(0), **kwargs)  # type: ignore[arg-type]


def test_aligned_pairs_and_item_means() -> None:
    assert aligned_pairs([1.0, None, 0.0], [0.5, 1.0, None]) == ([1.0], [0.5])
    with pytest.raises(ValueError, match="2 base values but 1"):
        aligned_pairs([1.0, 2.0], [1.0])
    scores = [
        ItemScore("json_valid", "1", 0, 1.0),
        ItemScore("json_valid", "1", 1, 0.0),
        ItemScore("json_valid", "1", 2, 1.0),
        ItemScore("rouge1", "1", 0, 0.5),
    ]
    assert item_means(scores) == {"json_valid": pytest.approx(2 / 3), "rouge1": 0.5}
