"""The evidence hash's float grid: the same evidence gives the same grid value whatever the last
bits a CPU computes, and a real change moves it."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from scoring.stats.evidence_grid import evidence_float, evidence_quantized


def nudged(value: float, ulps: int) -> float:
    direction = math.inf if ulps > 0 else -math.inf
    for _ in range(abs(ulps)):
        value = float(np.nextafter(value, direction))
    return value


def test_grid_values_are_short_decimals() -> None:
    assert evidence_float(0.6058998107910156) == 0.6059
    assert evidence_float(1 / 3) == 0.333333
    assert evidence_float(-1 / 3) == -0.333333
    assert evidence_float(1234.56789012) == 1234.56789
    assert evidence_float(123456789012.0) == 123456789000.0
    assert evidence_float(24.0) == 24.0
    assert math.copysign(1.0, evidence_float(-0.0)) == 1.0
    assert evidence_float(-3e-14) == 0.0  # cancellation noise around zero vanishes
    assert repr(evidence_float(0.7744140625)) == "0.774414"


def test_exact_simple_values_never_sit_on_a_rounding_edge() -> None:
    # Values reports hold exactly: halves, binomial p-values k/2**n, proportions k/n. Each stays
    # put within 8 units in the last place (the decimal grid rounded 793/1024 at its edge).
    values = {0.5, 0.25, 0.75, 1.0, 0.0}
    values |= {k / 2**n for n in range(1, 25) for k in range(1, 2**n, max(1, 2**n // 97))}
    values |= {k / n for n in range(1, 400) for k in range(0, n + 1)}
    for value in values:
        for sign in (1, -1):
            exact = evidence_float(sign * value)
            assert all(
                evidence_float(nudged(sign * value, ulps)) == exact for ulps in (-8, -1, 1, 8)
            ), value


@given(st.floats(min_value=-1e12, max_value=1e12, allow_nan=False))
def test_a_grid_value_is_within_one_step_of_the_value(value: float) -> None:
    step = 1e-6 if abs(value) < 1000 else 10.0 ** (len(str(int(abs(value)))) - 9)
    assert abs(evidence_float(value) - value) <= step * (1 + 1e-9)


def test_last_bit_noise_rarely_moves_a_noisy_value() -> None:
    # Values at random positions, then a reordered sum's noise (1e-13 relative): the share that
    # moves is about noise / step, far below one in a thousand.
    rng = np.random.default_rng(7)
    values = rng.random(100_000)
    moved = sum(evidence_float(v) != evidence_float(v * (1 + 1e-13)) for v in values)
    assert moved <= 10


def test_a_real_change_moves_the_grid_value() -> None:
    rng = np.random.default_rng(8)
    for value in rng.random(1_000):
        assert evidence_float(value + 1.5e-6) != evidence_float(value)
        assert evidence_float(value * 1000 + 1000) != evidence_float(value * 1000 + 1000 + 2e-5)


def test_only_finite_floats_are_quantized() -> None:
    data = {"a": [1 / 3, 2, "x", None, True], "b": {"c": math.inf}, "d": (0.1 + 0.2,)}
    assert evidence_quantized(data) == {
        "a": [0.333333, 2, "x", None, True],
        "b": {"c": math.inf},
        "d": [0.3],
    }
    assert Fraction(evidence_quantized(0.1 + 0.2)) == Fraction(0.3)
