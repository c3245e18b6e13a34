"""Group-sequential stopping for an A/B preference study, on items, with alpha spent once per look.

Design (planned when the study opens, :class:`SequentialDesign`): a maximum number of completed
items ``N``, looks at planned item counts (every ``look_every_items`` items from ``min_items`` on,
or an explicit list; the last look is at ``N``), a two-sided ``alpha`` and an alpha-spending
function of the information fraction ``t = min(n_items / N, 1)``:

* Lan-DeMets O'Brien-Fleming type (Lan & DeMets 1983, "Discrete sequential boundaries for
  clinical trials"; O'Brien & Fleming 1979): ``alpha(t) = 4 - 4 Phi(z_{1 - alpha/4} / sqrt(t))``,
  i.e. each side spends ``2 - 2 Phi(z_{1 - alpha/4} / sqrt(t))`` of its ``alpha / 2``, the
  convention of ``gsDesign::sfLDOF`` and ``ldbounds``;
* Lan-DeMets Pocock type: ``alpha(t) = alpha ln(1 + (e - 1) t)`` (``gsDesign::sfLDPocock``).

Boundaries: look ``k`` at fraction ``t_k`` rejects ``H0: win rate = 1/2`` when ``|Z_k| >= c_k``,
where ``c_k`` solves ``P(|Z_j| < c_j, j < k; |Z_k| >= c_k) = alpha(t_k) - alpha(t_{k-1})`` under
``H0`` for the fractions of the looks actually taken (so a missed or late look costs nothing: the
spending function, not the look count, fixes the alpha), by recursive numerical integration of
the Brownian-motion score process (Armitage, McPherson & Rowe 1969; Jennison & Turnbull 2000,
"Group Sequential Methods", ch. 19). ``c_k`` depends on ``t_1..t_k`` only, so recorded
boundaries never change. At ``t = 1`` the cumulative spending is exactly ``alpha``.

Statistic: the item-clustered score z of :func:`scoring.stats.clustered.cluster_score_test`,
``Z = sum(s_i - m_i / 2) / sqrt(sum((s_i - m_i / 2)^2))`` over items (``s_i`` the preference-score
sum of item ``i``'s ``m_i`` votes, ties and both-bad as half), so the k votes of one item are not
counted as k independent observations. It is self-normalised: given the residuals' sizes, under a
symmetric null its sign pattern is a Rademacher sum (Efron 1969, "Student's t-test under symmetry
conditions"), so ``P(|Z| >= c) <= 2 exp(-c^2 / 2)`` (Hoeffding 1963) at any item count and
``|Z| <= sqrt(n_items)``; its null distribution is close to, not exactly, N(0, 1) with few items.
In simulation (``bench/bench_sequential.py``: clustered nulls, a look every 10 items) it is slightly
conservative at the first looks (Pocock spending, 10 items: 0.4% spent where 0.8% is planned) and
the overall false-positive rate is on alpha (4.99% +- 0.11% pooled over 36,000 studies); early
O'Brien-Fleming looks carry almost no alpha anyway. ``min_items`` can still delay the first look.

Looks are spent once: :func:`sequential_look` returns a new :class:`LookRecord` only when the item
count has reached the next planned look point (``None`` otherwise), the caller records it, and
:func:`sequential_status` reads the recorded looks only, so building or reading a report spends
nothing. A crossed boundary ends the study (later calls return ``None``); so does the look at
``t = 1`` (decision ``"inconclusive"`` if it does not cross). Looks skipped because nobody called
in time are simply not taken: the next look spends the alpha up to its own ``t``.

Items still needed (a planning heuristic): if the effect stayed as observed at the last look, ``Z``
grows like ``sqrt(n)``; the estimate is the first planned look point where
``|Z_last| sqrt(n / n_last)`` reaches that look's boundary, minus the items so far, at least 1
while the study runs, and capped at the items left to ``N`` (flagged) when no planned look would
cross.

Legacy: :func:`sequential_decision` is the former vote-level test (sign-test z over votes, as if
votes were independent, and a look chosen from the vote count at each call), kept only until the
report uses the API above. It does not control the type I error under item clustering or
repeated reading (``bench/bench_sequential.py`` prints its false-positive rate next to the new
test's); its Bayesian option (a Beta-binomial posterior ``P(theta > 1/2)`` against
``posterior_level``, ties as half a success and half a failure or excluded) does not control the
frequentist type I error either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr
from scipy.stats import beta, norm

from scoring.stats.clustered import cluster_score_test

Method = Literal["obrien_fleming", "bayes"]
TieHandling = Literal["half", "exclude"]
Spending = Literal["obrien_fleming", "pocock"]
Decision = Literal["continue", "tuned", "base", "inconclusive"]
SPENDING_FUNCTIONS: tuple[str, ...] = ("obrien_fleming", "pocock")

# Odd, for Simpson's rule. The integrands are smooth Gaussians, so 401 points already give
# boundaries accurate to ~1e-8 (checked against 2,401 points).
_GRID_POINTS = 401
# Closely spaced looks need a finer grid (8 points per sd of the increment), up to this.
_MAX_GRID_POINTS = 4001
_UNREACHABLE = 40.0
# Recorded boundaries are recomputed from the recorded fractions; they must agree to this.
_BOUNDARY_TOLERANCE = 1e-6


def obrien_fleming_spending(t: float | np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Cumulative two-sided alpha spent by information fraction ``t`` (Lan-DeMets OBF type).

    ``2 * (2 - 2 Phi(z_{1 - alpha/4} / sqrt(t)))``; equals ``alpha`` at ``t = 1``.
    """
    t = np.asarray(t, dtype=np.float64)
    # 4 * sf rather than 4 - 4 * cdf: keeps the tiny early spending from rounding to 0.
    return 4.0 * norm.sf(norm.isf(alpha / 4.0) / np.sqrt(t))


def pocock_spending(t: float | np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Cumulative two-sided alpha spent by ``t`` (Lan-DeMets Pocock type).

    ``alpha * ln(1 + (e - 1) t)``; equals ``alpha`` at ``t = 1``.
    """
    t = np.asarray(t, dtype=np.float64)
    return alpha * np.log1p((math.e - 1.0) * t)


def alpha_spending(
    t: float | np.ndarray, alpha: float = 0.05, spending: Spending = "obrien_fleming"
) -> np.ndarray:
    """Cumulative two-sided alpha spent by information fraction ``t`` with ``spending``."""
    if spending == "obrien_fleming":
        return obrien_fleming_spending(t, alpha)
    if spending == "pocock":
        return pocock_spending(t, alpha)
    raise ValueError(f"spending must be one of {SPENDING_FUNCTIONS}, got {spending!r}")


def _simpson_weights(n: int, width: float) -> np.ndarray:
    w = np.ones(n)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return w * (width / (n - 1) / 3.0)


def _grid_points(width: float, kernel_sd: float) -> int:
    """Odd grid size with at least 8 points per standard deviation of the next increment."""
    wanted = max(_GRID_POINTS, min(_MAX_GRID_POINTS, math.ceil(8.0 * width / kernel_sd) + 1))
    return wanted + 1 - wanted % 2


def _exit_excess(
    c: float, grid: np.ndarray, mass: np.ndarray, sd: float, root_t: float, target: float
) -> float:
    """P(crossing +-c at the next look | continuation so far) minus the alpha to spend there."""
    edge = c * root_t
    crossing = ndtr((-edge - grid) / sd) + ndtr((grid - edge) / sd)
    return float(mass @ crossing) - target


def spending_boundaries(
    information_fractions: Sequence[float] | np.ndarray,
    *,
    alpha: float = 0.05,
    spending: Spending = "obrien_fleming",
) -> tuple[float, ...]:
    """Symmetric two-sided z boundaries for looks at the given information fractions.

    Args:
        information_fractions: strictly increasing fractions in (0, 1]; the last is usually 1.
        alpha: overall two-sided type I error.
        spending: ``"obrien_fleming"`` or ``"pocock"`` (Lan-DeMets types).

    Returns:
        One boundary ``c_k`` per look: reject ``H0`` at look ``k`` if ``|Z_k| >= c_k``. A look
        whose alpha increment underflows gets the unreachable boundary 40.

    Raises:
        ValueError: fractions not strictly increasing within (0, 1], ``alpha`` not in (0, 1), or
            an unknown spending function.
    """
    t = np.asarray(information_fractions, dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        raise ValueError("information_fractions must be a non-empty 1-D sequence")
    if spending not in SPENDING_FUNCTIONS:
        raise ValueError(f"spending must be one of {SPENDING_FUNCTIONS}, got {spending!r}")
    return _boundaries(tuple(t.tolist()), float(alpha), spending)


def obrien_fleming_boundaries(
    information_fractions: Sequence[float] | np.ndarray, *, alpha: float = 0.05
) -> tuple[float, ...]:
    """:func:`spending_boundaries` with the Lan-DeMets O'Brien-Fleming spending function."""
    return spending_boundaries(information_fractions, alpha=alpha, spending="obrien_fleming")


@lru_cache(maxsize=512)
def _boundaries(fractions: tuple[float, ...], alpha: float, spending: str) -> tuple[float, ...]:
    """Cached worker of :func:`spending_boundaries` (pure, so caching is safe)."""
    t = np.asarray(fractions)
    if not (np.all(t > 0) and np.all(t <= 1) and np.all(np.diff(t) > 0)):
        raise ValueError("information_fractions must be strictly increasing within (0, 1]")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    spent = alpha_spending(t, alpha, spending)  # type: ignore[arg-type]
    increments = np.diff(np.concatenate([[0.0], spent]))

    bounds = [float(min(norm.isf(increments[0] / 2.0), _UNREACHABLE))]
    # Density of the score S_1 = Z_1 sqrt(t_1) on the continuation region (-b, b).
    b = bounds[0] * math.sqrt(t[0])
    step_sd = math.sqrt(min(t[0], t[1] - t[0])) if t.size > 1 else math.sqrt(t[0])
    points = _grid_points(2.0 * b, step_sd)
    grid = np.linspace(-b, b, points)
    density = norm.pdf(grid, scale=math.sqrt(t[0]))
    weights = _simpson_weights(points, 2.0 * b)
    for k in range(1, t.size):
        sd = math.sqrt(t[k] - t[k - 1])
        mass = weights * density
        root_t = math.sqrt(t[k])

        if increments[k] <= 0.0:
            c_k = _UNREACHABLE
        else:
            c_k = brentq(
                _exit_excess,
                1e-6,
                _UNREACHABLE,
                args=(grid, mass, sd, root_t, increments[k]),
                xtol=1e-10,
            )
        bounds.append(float(c_k))
        # Convolve with the Gaussian increment to get S_k's density on its continuation region.
        b = c_k * root_t
        next_sd = math.sqrt(t[k + 1] - t[k]) if k + 1 < t.size else sd
        points = _grid_points(2.0 * b, min(sd, next_sd))
        new_grid = np.linspace(-b, b, points)
        kernel = np.exp(-0.5 * ((new_grid[:, None] - grid[None, :]) / sd) ** 2) / (
            sd * math.sqrt(2.0 * math.pi)
        )
        density = kernel @ mass
        grid = new_grid
        weights = _simpson_weights(points, 2.0 * b)
    return tuple(bounds)


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_positive_int(name: str, value: object) -> None:
    if not (_is_int(value) and value >= 1):  # type: ignore[operator]
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class SequentialDesign:
    """A group-sequential design on items, fixed when the study opens.

    Attributes:
        max_items: planned maximum number of completed items ``N`` (``t = min(n / N, 1)``).
        look_every_items: a look every this many items (ignored, and stored as ``None``, when
            ``look_items`` is given).
        look_items: explicit item counts of the looks, strictly increasing, each ``<= N``.
        alpha: overall two-sided type I error.
        spending: ``"obrien_fleming"`` or ``"pocock"`` (Lan-DeMets types).
        min_items: no look before this many items (planned looks below it are dropped; the
            look at ``max_items`` is always kept).
        created_from: what planned the design (free text, e.g. ``"study settings"``).

    The planned looks (:attr:`look_points`) always end with a look at ``max_items``.
    """

    max_items: int
    look_every_items: int | None = 10
    look_items: tuple[int, ...] | None = None
    alpha: float = 0.05
    spending: Spending = "obrien_fleming"
    min_items: int = 10
    created_from: str = ""
    look_points: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_positive_int("max_items", self.max_items)
        _check_positive_int("min_items", self.min_items)
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float):
            raise ValueError(f"alpha must be a number, got {self.alpha!r}")
        if not 0.0 < float(self.alpha) < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.spending not in SPENDING_FUNCTIONS:
            raise ValueError(f"spending must be one of {SPENDING_FUNCTIONS}, got {self.spending!r}")
        if not isinstance(self.created_from, str):
            raise ValueError(f"created_from must be a string, got {self.created_from!r}")
        if self.look_items is not None:
            looks = tuple(self.look_items)
            if not looks:
                raise ValueError("look_items must not be empty")
            for n in looks:
                _check_positive_int("look_items entries", n)
            if any(b <= a for a, b in zip(looks, looks[1:], strict=False)):
                raise ValueError("look_items must be strictly increasing")
            if looks[-1] > self.max_items:
                raise ValueError(f"look_items go beyond max_items ({self.max_items})")
            object.__setattr__(self, "look_items", tuple(int(n) for n in looks))
            object.__setattr__(self, "look_every_items", None)
            planned = [n for n in self.look_items if n >= self.min_items]
        else:
            _check_positive_int("look_every_items", self.look_every_items)
            every = int(self.look_every_items)  # type: ignore[arg-type]
            planned = [n for n in range(every, self.max_items, every) if n >= self.min_items]
        if not planned or planned[-1] != self.max_items:
            planned.append(int(self.max_items))
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "look_points", tuple(planned))

    def fraction(self, n_items: int) -> float:
        """Information fraction of ``n_items`` completed items, capped at 1."""
        return min(1.0, n_items / self.max_items)

    def next_look_point(self, after_items: int) -> int | None:
        """The first planned look point above ``after_items`` (``None`` past the last)."""
        return next((n for n in self.look_points if n > after_items), None)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict; :meth:`from_dict` inverts it."""
        return {
            "max_items": int(self.max_items),
            "look_every_items": self.look_every_items,
            "look_items": list(self.look_items) if self.look_items is not None else None,
            "alpha": self.alpha,
            "spending": self.spending,
            "min_items": int(self.min_items),
            "created_from": self.created_from,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SequentialDesign:
        """The design of :meth:`as_dict`; unknown keys and bad values raise ``ValueError``."""
        known = {"max_items", "look_every_items", "look_items", "alpha", "spending"}
        known |= {"min_items", "created_from"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown sequential design field(s): {', '.join(unknown)}")
        if "max_items" not in data:
            raise ValueError("sequential design needs max_items")
        values = dict(data)
        if values.get("look_items") is not None:
            if not isinstance(values["look_items"], list | tuple):
                raise ValueError(f"look_items must be a list, got {values['look_items']!r}")
            values["look_items"] = tuple(values["look_items"])
        return cls(**values)


@dataclass(frozen=True)
class LookRecord:
    """One interim or final look, to be recorded once (it spends alpha).

    Attributes:
        look: look number, 1-based.
        n_items: items with votes at the look; n_votes: their votes.
        information_fraction: ``min(n_items / max_items, 1)``.
        win_rate: item-clustered (vote-weighted) win rate, ties as half.
        z: item-clustered score z.
        boundary: ``|z|`` needed to stop at this look.
        alpha_spent: cumulative two-sided alpha spent up to and including this look.
        decision: ``"tuned"`` / ``"base"`` (boundary crossed: the study stops), ``"inconclusive"``
            (the final look, ``t = 1``, did not cross) or ``"continue"``.
    """

    look: int
    n_items: int
    n_votes: int
    information_fraction: float
    win_rate: float
    z: float
    boundary: float
    alpha_spent: float
    decision: Decision

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LookRecord:
        names = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - names)
        missing = sorted(names - set(data))
        if unknown or missing:
            raise ValueError(f"look record: unknown {unknown}, missing {missing}")
        return cls(**dict(data))

    @property
    def final(self) -> bool:
        """The study stops at this look (decided, or the look at ``t = 1``)."""
        return self.decision != "continue"


def _check_looks(design: SequentialDesign, looks: Sequence[LookRecord]) -> None:
    """Recorded looks must be consecutive, increasing, open-ended only at the last, and match
    the boundaries the design gives their fractions."""
    for k, record in enumerate(looks, start=1):
        if record.look != k:
            raise ValueError(f"recorded look {k} is numbered {record.look}")
        if k > 1 and record.n_items <= looks[k - 2].n_items:
            raise ValueError(f"recorded look {k} has no more items than look {k - 1}")
        if record.information_fraction != design.fraction(record.n_items):
            raise ValueError(f"recorded look {k}: information fraction does not match max_items")
        if k < len(looks) and record.final:
            raise ValueError(f"recorded look {k} ended the study but later looks exist")
    if looks:
        bounds = spending_boundaries(
            [r.information_fraction for r in looks], alpha=design.alpha, spending=design.spending
        )
        for record, bound in zip(looks, bounds, strict=True):
            if abs(record.boundary - bound) > _BOUNDARY_TOLERANCE:
                raise ValueError(
                    f"recorded look {record.look}: boundary {record.boundary} does not match the "
                    f"design ({bound}); the design must not change after the first look"
                )


def sequential_look(
    design: SequentialDesign,
    previous: Sequence[LookRecord],
    *,
    counts: np.ndarray | Sequence[Sequence[int]],
) -> LookRecord | None:
    """The new look to record now, or ``None`` when no look is due.

    A look is due when the study has not stopped (no recorded look crossed or reached
    ``t = 1``) and the number of items with votes has reached the next planned look point
    after the last recorded look. Its boundary spends ``alpha(t)`` for the fractions of all
    recorded looks plus this one; a look at ``t = 1`` spends the rest of ``alpha``.

    Args:
        design: the study's design.
        previous: the looks already recorded, in order (each spent its alpha).
        counts: ``(n_items, 4)`` vote counts per item in code order ``[base, tuned, tie,
            both_bad]``. Pass the completed items (all planned votes in): ``n_items`` counts
            the rows with at least one vote.

    Returns:
        The :class:`LookRecord` to store (the caller must record it before anyone acts on it),
        or ``None``.

    Raises:
        ValueError: malformed counts, or recorded looks inconsistent with the design.
    """
    _check_looks(design, previous)
    if previous and previous[-1].final:
        return None
    last_items = previous[-1].n_items if previous else 0
    due_at = design.next_look_point(last_items)
    score = cluster_score_test(counts)
    if due_at is None or score.n_items < due_at:
        return None
    fraction = design.fraction(score.n_items)
    fractions = [r.information_fraction for r in previous] + [fraction]
    boundary = spending_boundaries(fractions, alpha=design.alpha, spending=design.spending)[-1]
    decision: Decision = "continue"
    if abs(score.z) >= boundary:
        decision = "tuned" if score.z > 0 else "base"
    elif fraction >= 1.0:
        decision = "inconclusive"
    return LookRecord(
        look=len(previous) + 1,
        n_items=score.n_items,
        n_votes=score.n_votes,
        information_fraction=fraction,
        win_rate=float(score.estimate),
        z=float(score.z),
        boundary=float(boundary),
        alpha_spent=float(alpha_spending(fraction, design.alpha, design.spending)),
        decision=decision,
    )


@dataclass(frozen=True)
class SequentialStatus:
    """Where a sequential study stands, from its recorded looks only (reading spends nothing).

    Attributes:
        decided: a boundary was crossed; direction: ``"tuned"`` / ``"base"`` then, else ``None``.
        finished: no further look will be taken (decided, or the look at ``t = 1`` is recorded).
        decision: the last look's decision, ``"not_started"`` before the first look.
        looks: looks recorded.
        look, n_items, z, boundary, information_fraction, win_rate: of the last recorded look
            (``None`` before the first).
        alpha: the design's two-sided alpha; alpha_spent: cumulative alpha spent so far.
        next_look_items: item count at which the next look is due (``None`` when finished).
        items_to_next_look: ``next_look_items`` minus the current items (0: a look is due now);
            ``None`` when finished.
        items_remaining: items left to ``max_items``.
        items_needed: planning estimate of further items to reach a boundary if the effect at
            the last look held (0 when finished, else at least 1); items_needed_capped: no
            planned look would cross, so the estimate is the items left to ``max_items``.
        votes_needed: ``items_needed`` times the votes per item at the last look (``None``
            before the first look).
    """

    decided: bool
    direction: Literal["tuned", "base"] | None
    finished: bool
    decision: str
    looks: int
    look: int | None
    n_items: int | None
    z: float | None
    boundary: float | None
    information_fraction: float | None
    win_rate: float | None
    alpha: float
    alpha_spent: float
    next_look_items: int | None
    items_to_next_look: int | None
    items_remaining: int
    items_needed: int
    items_needed_capped: bool
    votes_needed: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _items_needed(
    design: SequentialDesign, looks: Sequence[LookRecord], current_items: int
) -> tuple[int, bool]:
    """First planned look where ``|z_last| sqrt(n / n_last)`` reaches its boundary."""
    remaining = max(design.max_items - current_items, 1)
    if not looks or looks[-1].z == 0.0:
        return remaining, True
    last = looks[-1]
    future = [n for n in design.look_points if n > last.n_items]
    fractions = [r.information_fraction for r in looks] + [design.fraction(n) for n in future]
    bounds = spending_boundaries(fractions, alpha=design.alpha, spending=design.spending)
    for n, bound in zip(future, bounds[len(looks) :], strict=True):
        if abs(last.z) * math.sqrt(n / last.n_items) >= bound:
            return max(n - current_items, 1), False
    return remaining, True


def sequential_status(
    design: SequentialDesign, looks: Sequence[LookRecord], *, n_items: int | None = None
) -> SequentialStatus:
    """The study's sequential standing from its recorded looks (pure read, spends nothing).

    Args:
        design: the study's design.
        looks: the recorded looks, in order.
        n_items: current number of completed items, if known (for the items-to-go figures;
            default: the items at the last look).

    Raises:
        ValueError: recorded looks inconsistent with the design, or a negative ``n_items``.
    """
    _check_looks(design, looks)
    last = looks[-1] if looks else None
    if n_items is not None and not (_is_int(n_items) and n_items >= 0):
        raise ValueError(f"n_items must be a non-negative integer, got {n_items!r}")
    current = int(n_items) if n_items is not None else (last.n_items if last else 0)
    finished = bool(last and last.final)
    decided = bool(last and last.decision in ("tuned", "base"))
    next_look = None if finished else design.next_look_point(last.n_items if last else 0)
    if finished:
        needed, capped = 0, False
    else:
        needed, capped = _items_needed(design, looks, current)
    votes_needed = None
    if last is not None:
        votes_needed = math.ceil(needed * last.n_votes / last.n_items) if needed else 0
    return SequentialStatus(
        decided=decided,
        direction=last.decision if decided else None,  # type: ignore[arg-type, union-attr]
        finished=finished,
        decision=last.decision if last else "not_started",
        looks=len(looks),
        look=last.look if last else None,
        n_items=last.n_items if last else None,
        z=last.z if last else None,
        boundary=last.boundary if last else None,
        information_fraction=last.information_fraction if last else None,
        win_rate=last.win_rate if last else None,
        alpha=design.alpha,
        alpha_spent=last.alpha_spent if last else 0.0,
        next_look_items=next_look,
        items_to_next_look=None if next_look is None else max(next_look - current, 0),
        items_remaining=max(design.max_items - current, 0),
        items_needed=needed,
        items_needed_capped=capped,
        votes_needed=votes_needed,
    )


def planned_boundaries(design: SequentialDesign) -> list[dict[str, float]]:
    """The boundaries the design gives if every planned look is taken on time (for display)."""
    fractions = [design.fraction(n) for n in design.look_points]
    bounds = spending_boundaries(fractions, alpha=design.alpha, spending=design.spending)
    spent = alpha_spending(np.asarray(fractions), design.alpha, design.spending)
    return [
        {"n_items": n, "information_fraction": t, "boundary": c, "alpha_spent": float(a)}
        for n, t, c, a in zip(design.look_points, fractions, bounds, spent, strict=True)
    ]


# --------------------------------------------------------------------------------------------
# Legacy vote-level test (see the module docstring); the report uses it until it is rewired.


@dataclass(frozen=True)
class SequentialDecision:
    """Outcome of one interim look.

    Attributes:
        decided: the evidence already decides the comparison.
        direction: ``"tuned"`` or ``"base"`` when decided, else ``None``.
        method: ``"obrien_fleming"`` or ``"bayes"`` (the method used).
        look: the look number (1-based).
        n_votes: votes so far, ties included.
        win_rate: observed win rate with the chosen tie handling (``nan`` if undefined).
        statistic: sign-test z (``obrien_fleming``) or posterior ``P(win rate > 1/2)`` (``bayes``).
        threshold: boundary ``|z|`` at this look, or ``posterior_level``.
        information_fraction: ``t`` of this look (``nan`` for ``bayes``).
        alpha_spent: cumulative two-sided alpha spent up to this look (``nan`` for ``bayes``).
        additional_votes: estimated further votes needed (0 when decided).
        additional_votes_capped: the estimate hit ``max_additional_votes`` (or is unbounded).
    """

    decided: bool
    direction: Literal["tuned", "base"] | None
    method: str
    look: int
    n_votes: int
    win_rate: float
    statistic: float
    threshold: float
    information_fraction: float
    alpha_spent: float
    additional_votes: int
    additional_votes_capped: bool


def _check_counts(*counts: int) -> None:
    for c in counts:
        if not _is_int(c) or c < 0:
            raise ValueError(f"vote counts must be non-negative integers, got {c!r}")


def _observed_rate(tuned_wins: int, base_wins: int, ties: int, tie_handling: str) -> float:
    """Observed win rate with the chosen tie handling (``nan`` if no vote counts)."""
    counted = tuned_wins + base_wins + (ties if tie_handling == "half" else 0)
    if counted == 0:
        return float("nan")
    return (tuned_wins + (0.5 * ties if tie_handling == "half" else 0.0)) / counted


def _additional_votes(
    tuned_wins: int, base_wins: int, ties: int, z: float, cap: int
) -> tuple[int, bool]:
    """Votes until ``2 sqrt(D) |p_d - 1/2| >= z`` at the observed rates, capped."""
    decisive = tuned_wins + base_wins
    if decisive == 0 or tuned_wins == base_wins:
        return cap, True
    p_d = tuned_wins / decisive
    decisive_needed = z * z / (4.0 * (p_d - 0.5) ** 2)
    share = decisive / (decisive + ties)
    more = max(math.ceil(decisive_needed / share) - (decisive + ties), 1)
    if more >= cap:
        return cap, True
    return more, False


def sequential_decision(
    tuned_wins: int,
    base_wins: int,
    ties: int = 0,
    *,
    look: int,
    max_looks: int,
    method: Method = "obrien_fleming",
    alpha: float = 0.05,
    information_fractions: Sequence[float] | None = None,
    tie_handling: TieHandling = "half",
    posterior_level: float = 0.975,
    prior: tuple[float, float] = (1.0, 1.0),
    max_additional_votes: int = 10_000,
) -> SequentialDecision:
    """Legacy vote-level decision at look ``look`` of ``max_looks`` (use :func:`sequential_look`).

    The sign-test z ``(W - L) / sqrt(W + L)`` treats votes as independent, and nothing records
    which looks were taken, so it does not control the type I error when items carry several
    votes or when it is called at every report build (``bench/bench_sequential.py``: 10-50%
    false positives at alpha 0.05). Ties do not enter the z (as half, they add ``T / 2`` to the
    numerator's mean and nothing to its null variance). Votes still needed: at the observed
    decisive share ``p_d = W / (W + L)``, ``Z`` crosses ``c`` once the decisive votes reach
    ``c^2 / (4 (p_d - 1/2)^2)``, divided by the decisive share of all votes, minus the votes so
    far, at least 1, capped at ``max_additional_votes`` (``c`` = the final boundary, or
    ``z_{posterior_level}`` for the Bayesian method).

    Args:
        tuned_wins, base_wins, ties: vote counts so far (both-bad votes counted as ties).
        look: this look's number, 1-based.
        max_looks: planned number of looks ``K``.
        method: ``"obrien_fleming"`` (Lan-DeMets O'Brien-Fleming alpha spending) or ``"bayes"``
            (Beta-binomial posterior).
        alpha: overall two-sided type I error (``obrien_fleming``).
        information_fractions: fractions of all ``K`` looks; default equally spaced ``k / K``.
            Pass e.g. ``votes_at_look / planned_votes`` when looks are uneven.
        tie_handling: ``"half"`` or ``"exclude"`` (see the module docstring).
        posterior_level: stop when ``P(win rate > 1/2)`` exceeds it or falls below ``1 - it``.
        prior: Beta prior ``(a, b)`` for the Bayesian method.
        max_additional_votes: cap of the votes-still-needed estimate.

    Returns:
        :class:`SequentialDecision`.

    Raises:
        ValueError: negative counts, ``look`` outside ``1..max_looks``, malformed fractions, or an
            unknown method / tie handling.
    """
    _check_counts(tuned_wins, base_wins, ties)
    if method not in ("obrien_fleming", "bayes"):
        raise ValueError(f"method must be 'obrien_fleming' or 'bayes', got {method!r}")
    if tie_handling not in ("half", "exclude"):
        raise ValueError(f"tie_handling must be 'half' or 'exclude', got {tie_handling!r}")
    if not (_is_int(max_looks) and max_looks >= 1):
        raise ValueError(f"max_looks must be a positive integer, got {max_looks!r}")
    if not (_is_int(look) and 1 <= look <= max_looks):
        raise ValueError(f"look must be an integer in 1..{max_looks}, got {look!r}")
    look, max_looks = int(look), int(max_looks)
    if max_additional_votes < 1:
        raise ValueError("max_additional_votes must be >= 1")
    if information_fractions is None:
        fractions = np.arange(1, max_looks + 1) / max_looks
    else:
        fractions = np.asarray(information_fractions, dtype=np.float64)
        if fractions.shape != (max_looks,):
            raise ValueError(f"information_fractions needs {max_looks} entries (one per look)")

    tuned_wins, base_wins, ties = int(tuned_wins), int(base_wins), int(ties)
    n_votes = tuned_wins + base_wins + ties
    p = _observed_rate(tuned_wins, base_wins, ties, tie_handling)

    if method == "obrien_fleming":
        bounds = obrien_fleming_boundaries(fractions, alpha=alpha)
        decisive = tuned_wins + base_wins
        z = (tuned_wins - base_wins) / math.sqrt(decisive) if decisive else 0.0
        threshold = bounds[look - 1]
        decided = abs(z) >= threshold
        direction = ("tuned" if z > 0 else "base") if decided else None
        statistic, final_z = float(z), bounds[-1]
        fraction = float(fractions[look - 1])
        spent = float(obrien_fleming_spending(fraction, alpha))
    else:
        if not 0.5 < posterior_level < 1.0:
            raise ValueError(f"posterior_level must be in (0.5, 1), got {posterior_level}")
        a0, b0 = float(prior[0]), float(prior[1])
        if a0 <= 0 or b0 <= 0:
            raise ValueError("prior parameters must be positive")
        half_ties = 0.5 * ties if tie_handling == "half" else 0.0
        prob = float(beta.sf(0.5, a0 + tuned_wins + half_ties, b0 + base_wins + half_ties))
        threshold = posterior_level
        decided = prob > posterior_level or prob < 1.0 - posterior_level
        direction = ("tuned" if prob > 0.5 else "base") if decided else None
        statistic, final_z = prob, float(norm.ppf(posterior_level))
        fraction = spent = float("nan")

    if decided:
        more, capped = 0, False
    else:
        more, capped = _additional_votes(
            tuned_wins, base_wins, ties, final_z, int(max_additional_votes)
        )
    return SequentialDecision(
        decided=bool(decided),
        direction=direction,
        method=method,
        look=look,
        n_votes=n_votes,
        win_rate=float(p),
        statistic=float(statistic),
        threshold=float(threshold),
        information_fraction=fraction,
        alpha_spent=spent,
        additional_votes=int(more),
        additional_votes_capped=bool(capped),
    )
