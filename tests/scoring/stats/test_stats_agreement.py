"""Agreement coefficients against published references, the krippendorff package and invariances."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score

from scoring.stats import agreement
from scoring.stats._resampling import resample_weights
from scoring.stats.agreement import (
    AgreementEstimate,
    agreement_summary,
    cohen_kappa_pairwise,
    cohen_kappa_table,
    fleiss_kappa,
    gwet_ac,
    gwet_ac1,
    gwet_ac2,
    gwet_weights,
    krippendorff_alpha,
    percent_agreement,
)

NAN = np.nan

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", sec. C: 4 observers x 12 units.
KRIPPENDORFF_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
        [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
    ]
)

# Fleiss' kappa textbook table (Wikipedia "Fleiss' kappa"): 10 subjects, 14 raters, 5 categories.
FLEISS_TABLE = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
)

# Fleiss (1971) psychiatric diagnoses, 30 subjects x 6 raters, as shipped in statsmodels' tests
# (statsmodels/stats/tests/test_inter_rater.py, ``diagnoses``); R irr::kappam.fleiss = 0.4302.
DIAGNOSES = np.array(
    [
        [4, 4, 4, 4, 4, 4],
        [2, 2, 2, 5, 5, 5],
        [2, 3, 3, 3, 3, 5],
        [5, 5, 5, 5, 5, 5],
        [2, 2, 2, 4, 4, 4],
        [1, 1, 3, 3, 3, 3],
        [3, 3, 3, 3, 5, 5],
        [1, 1, 3, 3, 3, 4],
        [1, 1, 4, 4, 4, 4],
        [5, 5, 5, 5, 5, 5],
        [1, 4, 4, 4, 4, 4],
        [1, 2, 4, 4, 4, 4],
        [2, 2, 2, 3, 3, 3],
        [1, 4, 4, 4, 4, 4],
        [2, 2, 4, 4, 4, 5],
        [3, 3, 3, 3, 3, 5],
        [1, 1, 1, 4, 5, 5],
        [1, 1, 1, 1, 1, 2],
        [2, 2, 4, 4, 4, 4],
        [1, 3, 3, 5, 5, 5],
        [5, 5, 5, 5, 5, 5],
        [2, 4, 4, 4, 4, 4],
        [2, 2, 4, 5, 5, 5],
        [1, 1, 4, 4, 4, 4],
        [1, 4, 4, 4, 4, 5],
        [2, 2, 2, 2, 2, 4],
        [1, 1, 1, 1, 5, 5],
        [2, 2, 4, 4, 4, 4],
        [1, 3, 3, 3, 3, 3],
        [5, 5, 5, 5, 5, 5],
    ]
)


def table_to_matrix(table: np.ndarray) -> np.ndarray:
    """Subjects x categories count table -> raters x items matrix (categories coded 1..q)."""
    columns = [np.repeat(np.arange(1, table.shape[1] + 1), row) for row in table]
    return np.array(columns, dtype=float).T


def two_rater_matrix(table: list[list[int]]) -> np.ndarray:
    """A square 2-rater contingency table -> 2 x n ratings matrix."""
    pairs = [(a, b) for a, row in enumerate(table) for b, n in enumerate(row) for _ in range(n)]
    return np.array(pairs, dtype=float).T


# --------------------------------------------------------------------------------------------
# Published references


@pytest.mark.parametrize(
    ("level", "expected"),
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
def test_krippendorff_2011_reference(level: str, expected: float) -> None:
    result = krippendorff_alpha(KRIPPENDORFF_2011, level=level, n_resamples=0)
    assert result.estimate == pytest.approx(expected, abs=1e-3)
    assert result.estimate == pytest.approx(
        krippendorff.alpha(KRIPPENDORFF_2011, level_of_measurement=level), abs=1e-9
    )
    assert result.n_items == 11  # unit 12 has a single value and is not pairable
    assert result.statistic == f"krippendorff_alpha_{level}"


def test_krippendorff_2011_binary_example() -> None:
    data = np.array([[int(c) for c in "0100000010"], [int(c) for c in "1110010000"]], float)
    assert krippendorff_alpha(data, n_resamples=0).estimate == pytest.approx(0.095, abs=1e-3)


def test_fleiss_textbook_table() -> None:
    result = fleiss_kappa(table_to_matrix(FLEISS_TABLE), n_resamples=0)
    assert result.estimate == pytest.approx(0.210, abs=1e-3)
    assert result.n_items == 10


def test_fleiss_1971_diagnoses() -> None:
    result = fleiss_kappa(DIAGNOSES.T.astype(float), n_resamples=0)
    assert result.estimate == pytest.approx(0.4302, abs=1e-3)


def test_cohen_kappa_two_by_two() -> None:
    # Cohen's kappa 2x2 example: p_o = 0.7, p_e = 0.5 -> 0.4.
    assert cohen_kappa_table([[20, 5], [10, 15]]) == pytest.approx(0.40, abs=1e-9)
    data = two_rater_matrix([[20, 5], [10, 15]])
    result = cohen_kappa_pairwise(data, n_resamples=0)
    assert result.mean.estimate == pytest.approx(0.40, abs=1e-9)
    assert result.pairs[0].n_common == 50


def test_gwet_ac1_irrcac_four_raters() -> None:
    # irrCAC's cac.raw4raters is Krippendorff's 4 x 12 example; gwet.ac1.raw() reports
    # pa = 0.8181818, pe = 0.1903212, AC1 = 0.77544 and fleiss.kappa.raw() 0.76117.
    assert gwet_ac1(KRIPPENDORFF_2011, n_resamples=0).estimate == pytest.approx(0.7754, abs=1e-3)
    assert fleiss_kappa(KRIPPENDORFF_2011, n_resamples=0).estimate == pytest.approx(
        0.7612, abs=1e-3
    )
    assert percent_agreement(KRIPPENDORFF_2011, n_resamples=0).estimate == pytest.approx(
        9 / 11, abs=1e-12
    )


def test_gwet_ac1_two_raters_by_hand() -> None:
    # Gwet (2008), two raters: AC1 = (p_a - p_e) / (1 - p_e),
    # p_e = 1/(q-1) sum_k pi_k (1 - pi_k), pi_k = (row_k + col_k) / (2n).
    table = [[118, 5], [2, 0]]
    n = 125
    p_a = 118 / n
    pi = np.array([(123 + 120) / (2 * n), (2 + 5) / (2 * n)])
    p_e = (pi * (1 - pi)).sum() / (2 - 1)
    expected = (p_a - p_e) / (1 - p_e)
    result = gwet_ac1(two_rater_matrix(table), n_resamples=0)
    assert result.estimate == pytest.approx(expected, abs=1e-12)
    assert result.estimate == pytest.approx(0.9408, abs=1e-3)
    # The kappa paradox this example illustrates: kappa is near zero on the same table.
    assert cohen_kappa_table(table) < 0.0


def naive_gwet(data: np.ndarray, categories: np.ndarray, weights: np.ndarray) -> tuple:
    """irrCAC's gwet.ac1.raw / fleiss.kappa.raw, written as plain loops."""
    q = len(categories)
    rated, agree_terms, pi_terms = 0, [], np.zeros(q)
    for u in range(data.shape[1]):
        values = data[:, u][~np.isnan(data[:, u])]
        if values.size == 0:
            continue
        rated += 1
        r = np.array([(values == c).sum() for c in categories], dtype=float)
        m = r.sum()
        pi_terms += r / m
        if m >= 2:
            r_star = weights @ r
            agree_terms.append((r * (r_star - 1)).sum() / (m * (m - 1)))
    p_a = np.mean(agree_terms)
    pi = pi_terms / rated
    ac_pe = weights.sum() / (q * (q - 1)) * (pi * (1 - pi)).sum()
    kappa_pe = (pi**2).sum()
    return (p_a - ac_pe) / (1 - ac_pe), (p_a - kappa_pe) / (1 - kappa_pe)


@pytest.mark.parametrize("weights", ["ordinal", "linear", "quadratic"])
def test_gwet_ac2_matches_hand_formula(weights: str) -> None:
    categories = np.arange(1.0, 6.0)
    w = gwet_weights(categories, weights)
    expected, _ = naive_gwet(KRIPPENDORFF_2011, categories, w)
    result = gwet_ac2(KRIPPENDORFF_2011, weights=weights, n_resamples=0)
    assert result.estimate == pytest.approx(expected, abs=1e-12)
    assert result.statistic == f"gwet_ac2_{weights}"


def test_gwet_weights_shapes() -> None:
    ordinal = gwet_weights([1, 2, 3], "ordinal")
    # M_kl = C(|k-l|+1, 2): 0, 1, 3 -> weights 1, 2/3, 0.
    assert ordinal[0].tolist() == pytest.approx([1.0, 2 / 3, 0.0])
    assert gwet_weights([0, 1, 2], "linear")[0].tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert gwet_weights([0, 1, 2], "quadratic")[0].tolist() == pytest.approx([1.0, 0.75, 0.0])
    with pytest.raises(ValueError, match="weights"):
        gwet_weights([0, 1], "cubic")  # type: ignore[arg-type]


def test_gwet_categories_change_chance_agreement() -> None:
    data = two_rater_matrix([[10, 2], [3, 10]])
    observed_only = gwet_ac1(data, n_resamples=0).estimate
    full_codes = gwet_ac1(data, categories=[0, 1, 2, 3], n_resamples=0).estimate
    assert full_codes > observed_only  # more categories -> lower chance agreement


# --------------------------------------------------------------------------------------------
# Cross-checks with other implementations


def test_varying_rater_counts_match_naive_generalisation() -> None:
    rng = np.random.default_rng(3)
    data = rng.integers(0, 4, size=(6, 40)).astype(float)
    data[rng.random(data.shape) < 0.4] = np.nan
    categories = np.arange(4.0)
    ac1, kappa = naive_gwet(data, categories, np.eye(4))
    assert gwet_ac1(data, categories=categories, n_resamples=0).estimate == pytest.approx(ac1)
    assert fleiss_kappa(data, categories=categories, n_resamples=0).estimate == pytest.approx(kappa)


def test_fleiss_equal_n_matches_generalised_formula() -> None:
    data = DIAGNOSES.T.astype(float)
    _, kappa = naive_gwet(data, np.arange(1.0, 6.0), np.eye(5))
    assert fleiss_kappa(data, n_resamples=0).estimate == pytest.approx(kappa, abs=1e-12)


def test_pairwise_cohen_matches_sklearn() -> None:
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 3, 60)
    data = np.where(rng.random((4, 60)) < 0.7, truth, rng.integers(0, 3, (4, 60))).astype(float)
    data[rng.random(data.shape) < 0.2] = np.nan
    result = cohen_kappa_pairwise(data, n_resamples=0)
    kappas = []
    for pair in result.pairs:
        both = ~np.isnan(data[pair.rater_a]) & ~np.isnan(data[pair.rater_b])
        expected = cohen_kappa_score(data[pair.rater_a, both], data[pair.rater_b, both])
        assert pair.kappa == pytest.approx(expected, abs=1e-12)
        assert pair.n_common == both.sum()
        kappas.append(expected)
    assert result.mean.estimate == pytest.approx(np.mean(kappas), abs=1e-12)


def test_pairwise_cohen_min_common_items_excludes_pairs() -> None:
    data = np.array(
        [
            [0, 1, 0, 1, 0, 1, NAN, NAN],
            [0, 1, 0, 1, 1, 1, NAN, NAN],
            [NAN, NAN, NAN, NAN, NAN, 1, 0, 1],
        ]
    )
    result = cohen_kappa_pairwise(data, min_common_items=3, n_resamples=0)
    assert [np.isnan(p.kappa) for p in result.pairs] == [False, True, True]
    assert result.mean.estimate == pytest.approx(result.pairs[0].kappa)
    with pytest.raises(ValueError, match="common items"):
        cohen_kappa_pairwise(data, min_common_items=20, n_resamples=0)


# --------------------------------------------------------------------------------------------
# Fast path == krippendorff package, point estimate and bootstrap replicates

ratings = st.integers(min_value=-1, max_value=4)  # -1 -> missing


@st.composite
def rating_matrices(draw: st.DrawFn) -> np.ndarray:
    raters = draw(st.integers(min_value=2, max_value=5))
    items = draw(st.integers(min_value=1, max_value=12))
    cells = draw(st.lists(ratings, min_size=raters * items, max_size=raters * items))
    data = np.array(cells, dtype=float).reshape(raters, items)
    data[data < 0] = np.nan
    return data


def _alpha_defined(data: np.ndarray) -> bool:
    pairable = (~np.isnan(data)).sum(axis=0) >= 2
    values = np.unique(data[:, pairable][~np.isnan(data[:, pairable])])
    return bool(pairable.any() and values.size >= 2)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=rating_matrices(), level=st.sampled_from(agreement.LEVELS))
def test_fast_alpha_equals_krippendorff_package(data: np.ndarray, level: str) -> None:
    assume(_alpha_defined(data))
    with np.errstate(all="ignore"):
        expected = krippendorff.alpha(data, level_of_measurement=level)
    assume(np.isfinite(expected))
    ours = krippendorff_alpha(data, level=level, n_resamples=0).estimate
    assert ours == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("level", agreement.LEVELS)
def test_bootstrap_replicates_equal_krippendorff_on_resampled_columns(level: str) -> None:
    rng = np.random.default_rng(11)
    data = rng.integers(1, 6, size=(5, 30)).astype(float)
    data[rng.random(data.shape) < 0.25] = np.nan
    features, finalize = agreement._alpha_plan(data, level, None)
    pairable = data[:, (~np.isnan(data)).sum(axis=0) >= 2]
    weights = next(resample_weights(pairable.shape[1], 5, np.random.default_rng(2)))
    fast = finalize(
        np.asarray((features.T @ weights.T).T) if hasattr(features, "tocsr") else weights @ features
    )
    for b in range(5):
        resampled = np.repeat(pairable, weights[b].astype(int), axis=1)
        expected = krippendorff.alpha(resampled, level_of_measurement=level)
        assert fast[b] == pytest.approx(expected, abs=1e-9)


# --------------------------------------------------------------------------------------------
# Invariances


@settings(max_examples=30, deadline=None)
@given(data=rating_matrices(), seed=st.integers(0, 2**32 - 1))
def test_relabelling_raters_and_items_changes_nothing(data: np.ndarray, seed: int) -> None:
    assume(_alpha_defined(data))
    perm = np.random.default_rng(seed)
    shuffled = data[perm.permutation(data.shape[0])][:, perm.permutation(data.shape[1])]
    for level in agreement.LEVELS:
        a = krippendorff_alpha(data, level=level, n_resamples=0).estimate
        b = krippendorff_alpha(shuffled, level=level, n_resamples=0).estimate
        assert a == pytest.approx(b, abs=1e-9, nan_ok=True)
    for func in (fleiss_kappa, gwet_ac1, percent_agreement):
        a = func(data, n_resamples=0).estimate
        b = func(shuffled, n_resamples=0).estimate
        assert a == pytest.approx(b, abs=1e-9, nan_ok=True)


@settings(max_examples=30, deadline=None)
@given(
    truth=st.lists(st.integers(0, 3), min_size=2, max_size=15),
    raters=st.integers(2, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_perfect_agreement_gives_one(truth: list[int], raters: int, seed: int) -> None:
    assume(len(set(truth)) >= 2)
    data = np.tile(np.array(truth, dtype=float), (raters, 1))
    # Knock out ratings but keep >= 2 per item so every item stays pairable.
    mask = np.random.default_rng(seed).random(data.shape) < 0.3
    mask[:2] = False
    data[mask] = np.nan
    for level in agreement.LEVELS:
        data_level = data + 1.0 if level == "ratio" else data
        assert krippendorff_alpha(data_level, level=level, n_resamples=0).estimate == (
            pytest.approx(1.0)
        )
    assert gwet_ac1(data, n_resamples=0).estimate == pytest.approx(1.0)
    assert fleiss_kappa(data, n_resamples=0).estimate == pytest.approx(1.0)
    assert percent_agreement(data, n_resamples=0).estimate == pytest.approx(1.0)
    assert gwet_ac2(data, n_resamples=0).estimate == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------
# Bootstrap behaviour


def test_bootstrap_interval_is_reproducible_and_brackets_estimate() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, 300)
    data = np.where(rng.random((5, 300)) < 0.7, truth, rng.integers(0, 4, (5, 300))).astype(float)
    data[rng.random(data.shape) < 0.2] = np.nan
    first = krippendorff_alpha(data, rng=np.random.default_rng(42), n_resamples=300)
    second = krippendorff_alpha(data, rng=np.random.default_rng(42), n_resamples=300)
    assert first == second
    assert first.ci_low < first.estimate < first.ci_high
    assert 0.0 < first.ci_high - first.ci_low < 0.2
    for func in (fleiss_kappa, gwet_ac1, percent_agreement):
        est = func(data, rng=np.random.default_rng(1), n_resamples=200)
        assert est.ci_low <= est.estimate <= est.ci_high
    pairwise = cohen_kappa_pairwise(data, rng=np.random.default_rng(1), n_resamples=200)
    assert pairwise.mean.ci_low <= pairwise.mean.estimate <= pairwise.mean.ci_high


def test_bootstrap_ci_width_shrinks_with_items() -> None:
    def width(n_items: int) -> float:
        rng = np.random.default_rng(n_items)
        truth = rng.integers(0, 3, n_items)
        noise = rng.integers(0, 3, (4, n_items))
        data = np.where(rng.random((4, n_items)) < 0.6, truth, noise).astype(float)
        est = krippendorff_alpha(data, rng=rng, n_resamples=300)
        return est.ci_high - est.ci_low

    assert width(2000) < width(100) / 2.5


def test_point_estimate_only_and_rng_required() -> None:
    est = krippendorff_alpha(KRIPPENDORFF_2011, n_resamples=0)
    assert np.isnan(est.ci_low) and np.isnan(est.ci_high)
    assert est.n_resamples == 0
    with pytest.raises(ValueError, match="Generator"):
        krippendorff_alpha(KRIPPENDORFF_2011)
    with pytest.raises(ValueError, match="Generator"):
        krippendorff_alpha(KRIPPENDORFF_2011, rng=42)  # type: ignore[arg-type]


def test_inputs_are_not_mutated() -> None:
    data = KRIPPENDORFF_2011.copy()
    agreement_summary(data, rng=np.random.default_rng(0), n_resamples=20)
    np.testing.assert_array_equal(data, KRIPPENDORFF_2011)


def test_summary_contains_the_expected_coefficients() -> None:
    nominal = agreement_summary(KRIPPENDORFF_2011, rng=np.random.default_rng(0), n_resamples=50)
    assert set(nominal) == {
        "krippendorff_alpha_nominal",
        "fleiss_kappa",
        "gwet_ac1",
        "cohen_kappa_mean_pairwise",
        "percent_agreement",
    }
    assert all(isinstance(v, AgreementEstimate) for v in nominal.values())
    ordinal = agreement_summary(KRIPPENDORFF_2011, level="ordinal", n_resamples=0)
    assert set(ordinal) == {"krippendorff_alpha_ordinal", "gwet_ac2_ordinal", "percent_agreement"}


# --------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (np.array([1.0, 2.0]), "2-D"),
        (np.array([[1.0, 2.0]]), "two raters"),
        (np.array([[1.0, np.inf], [1.0, 2.0]]), "inf"),
        (np.array([[NAN, NAN], [NAN, NAN]]), "two or more raters"),
        (np.array([[1.0, NAN], [NAN, 2.0]]), "two or more raters"),
        (np.array([[1.0, 1.0], [1.0, 1.0]]), "same value"),
        ([["a", "b"], ["a", "b"]], "numeric"),
    ],
)
def test_alpha_rejects_bad_input(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        krippendorff_alpha(data, n_resamples=0)  # type: ignore[arg-type]


def test_other_bad_inputs() -> None:
    with pytest.raises(ValueError, match="level"):
        krippendorff_alpha(KRIPPENDORFF_2011, level="cardinal", n_resamples=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no ratings"):
        fleiss_kappa(np.full((2, 3), NAN), n_resamples=0)
    with pytest.raises(ValueError, match="outside categories"):
        fleiss_kappa(KRIPPENDORFF_2011, categories=[1, 2, 3], n_resamples=0)
    with pytest.raises(ValueError, match="two categories"):
        gwet_ac1(np.ones((3, 4)), n_resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        gwet_ac(KRIPPENDORFF_2011, confidence=1.5, n_resamples=0)
    with pytest.raises(ValueError, match="n_resamples"):
        percent_agreement(KRIPPENDORFF_2011, n_resamples=-1)
    with pytest.raises(ValueError, match="square"):
        cohen_kappa_table([[1, 2, 3], [4, 5, 6]])
    with pytest.raises(ValueError, match="use gwet_ac1"):
        gwet_ac2(KRIPPENDORFF_2011, weights="identity", n_resamples=0)
    with pytest.raises(ValueError, match="min_common_items"):
        cohen_kappa_pairwise(KRIPPENDORFF_2011, min_common_items=0, n_resamples=0)


def test_undefined_kappa_is_nan() -> None:
    assert np.isnan(cohen_kappa_table([[5, 0], [0, 0]]))


def test_resamples_where_alpha_is_undefined_are_counted() -> None:
    from scoring.stats.agreement import krippendorff_alpha

    # Ten items where both raters say 0 and one where they disagree: a resample without the
    # disagreeing item has no variation, so alpha is undefined there.
    data = np.array([[0.0] * 10 + [0.0], [0.0] * 10 + [1.0]])
    result = krippendorff_alpha(
        data, level="nominal", n_resamples=400, rng=np.random.default_rng(1)
    )
    assert 0 < result.n_undefined_resamples < 400
    # About (10/11)^11 of resamples miss the one informative item.
    assert abs(result.n_undefined_resamples / 400 - (10 / 11) ** 11) < 0.08
