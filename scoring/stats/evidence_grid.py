"""The grid on which a report's floats enter the evidence hash (pure: no Django, no torch).

The same evidence computed on another CPU differs in the last bits (OpenBLAS and NumPy pick
their SIMD kernels per CPU, and a wider kernel sums in another order), so a full-precision hash
would call a sign-off stale, or split two approvals, whenever the web process and a worker run
on different hardware. Floats are therefore hashed on a grid: six decimal places below 1000,
nine significant digits from 1000 up. Any real change of evidence changes a count, or a float by
more than that. The grid's values are short decimals, so the JSON a sign-off stores reads as
the report rounded (0.6059, not 0.6058998107910156).

Rounding goes up at 0.618 of a step, not at 0.5: the values a report holds exactly (1/2,
k/2**n, k/n for small n) then lie far from every rounding edge, where a few units in the last
place cannot flip them. (With rounding at the half a binomial p-value of 793/1024 =
0.7744140625 sat exactly on the edge of the tenth decimal.) A value computed with noise flips
only when it lies within that noise of an edge: about 1e-10 of the time per float for last-bit
noise, 1e-7 for a reordered sum of 1e5 terms.
"""

from __future__ import annotations

import math
from typing import Any

DECIMALS = 6
SIGNIFICANT_DIGITS = 9
# The golden ratio's fraction: the number worst approximated by fractions with small
# denominators, so no simple exact value sits near the rounding edge.
ROUNDING_EDGE = (math.sqrt(5) - 1) / 2


def evidence_float(value: float) -> float:
    """A finite `value` on the grid: `steps` x 10**`exponent`, with exponent -6 below 1000 and
    (digits before the point - 9) from 1000 up. Every operation is correctly rounded IEEE
    arithmetic or exact, so every CPU gives the same result for the same input."""
    integer_digits = len(str(int(abs(value))))
    exponent = max(-DECIMALS, integer_digits - SIGNIFICANT_DIGITS)
    scaled = value * 10**-exponent if exponent < 0 else value / 10**exponent
    steps = math.floor(scaled + (1.0 - ROUNDING_EDGE))
    return float(f"{steps}e{exponent}") + 0.0  # + 0.0: -0.0 becomes 0.0


def evidence_quantized(value: Any) -> Any:
    """JSON data with every finite float on the grid; everything else as it is."""
    if isinstance(value, float):
        return evidence_float(value) if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: evidence_quantized(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [evidence_quantized(v) for v in value]
    return value
