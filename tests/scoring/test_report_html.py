"""The self-contained HTML study report: content, escaping, graceful degradation (no database)."""

from __future__ import annotations

import copy
import re
from collections import Counter
from typing import Any

import pytest

from scoring.report_html import render_report_html

XSS = "<script>alert(1)</script>"
EXTERNAL_REF = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def full_report() -> dict[str, Any]:
    return {
        "schema_version": 1,
        "software_version": "0.1.0",
        "generated_at": "2025-01-02T03:04:05+00:00",
        "study": {
            "slug": "summ-v2",
            "name": "Summaries v2",
            "task_type": "generation",
            "overlap": 3,
            "max_overlap": 5,
            "status": "active",
            "queue_order": "random",
            "base_model": "base-7b",
            "tuned_model": "tuned-7b",
            "settings": {"rater_thresholds": {"min_median_seconds": 4}, "note": XSS},
        },
        "options": {"exclude_flagged_raters": True, "excluded_raters": ["mallory"], "seed": 7},
        "items": 120,
        "judgments": 360,
        "gold_items": 10,
        "votes": {"base": 100, "tuned": 200, "tie": 40, "both_bad": 20},
        "win_rate": {
            "tuned": 0.6123,
            "tuned_no_ties": 0.6667,
            "ci95": [0.5611, 0.6612],
            "panel_ci95": [0.5588, 0.6650],
            "p_value": 0.00001,
            "p_value_exact": 0.00002,
            "n": 360,
            "n_items": 120,
            "n_raters": 6,
            "design_effect": 1.8,
            "warnings": [XSS],
            "generalises_to": {"ci95": "items like these, this panel", "panel_ci95": XSS},
            "gate": {"item": {"status": "pass"}, "panel": {"status": "pass"}},
        },
        "length_adjusted_win_rate": {
            "name": "length-adjusted win rate",
            "not": "not AlpacaEval 2's",
            "humans": {"value": 0.5834, "ci95": [0.52, 0.64], "slope": 0.0012},
            "judge": None,
        },
        "agreement": {
            "krippendorff_alpha": 0.7123,
            "krippendorff_alpha_ci95": [0.65, 0.77],
            "fleiss_kappa": 0.70,
            "fleiss_kappa_ci95": [0.64, 0.76],
            "percent_agreement": 0.81,
            "percent_agreement_ci95": [0.77, 0.85],
            "gwet_ac1": 0.74,
            "gwet_ac1_ci95": [0.69, 0.80],
            "cohen_kappa_mean": 0.69,
            "n_items": 120,
            "n_raters": 6,
        },
        "judge_human": {
            "judge_id": "gpt-judge",
            "agreement": 0.6321,
            "human_human_agreement": 0.6543,
            "pairwise": {
                "judge_human": {"agreement": 0.6321, "ci95": [0.59, 0.67], "n_pairs": 360},
                "human_human": {"agreement": 0.6543, "ci95": [0.61, 0.69], "n_pairs": 360},
                "difference": {"value": -0.0222, "ci95": [-0.06, 0.02]},
                "judge_human_without_ties": {"agreement": 0.8214, "ci95": [0.78, 0.86]},
                "human_human_without_ties": {"agreement": 0.8771, "ci95": [0.84, 0.91]},
                "difference_without_ties": {"value": -0.0557, "ci95": [-0.1, -0.01]},
                "n_items": 120,
                "n_votes": 360,
                "unit": "pairs of votes on the same item",
            },
            "majority": {
                "label": "secondary: judge vs the human majority",
                "n": 120,
                "agreement": 0.7,
                "agreement_non_tie": 0.85,
                "n_non_tie": 84,
                "cohen_kappa": 0.4512,
                "labels": ["base", "tuned", "tie"],
                "confusion": [[30, 5, 4], [6, 40, 10], [3, 8, 14]],
            },
        },
        "judge": {"tuned_win_rate": 0.64, "position_bias_rate": 0.12, "n": 120},
        "raters": [
            {
                "rater": "alice",
                "votes": 120,
                "median_seconds": 21.5,
                "response_1_rate": 0.51,
                "response_1_p_value": 0.8,
                "loo_agreement": 0.8,
                "gold_accuracy": 1.0,
                "flags": [],
                "flagged": False,
            },
            {
                "rater": "mallory",
                "votes": 120,
                "median_seconds": 1.2,
                "response_1_rate": 0.9,
                "response_1_p_value": 1e-9,
                "loo_agreement": 0.4,
                "gold_accuracy": None,
                "flags": ["too_fast", "position_bias"],
                "flagged": True,
            },
        ],
        "metrics": {
            "rougeL": {
                "base": 0.31,
                "tuned": 0.35,
                "delta": 0.04,
                "delta_ci95": [0.02, 0.06],
                "n": 120,
                "lower_is_better": False,
            },
            "perplexity": {
                "base": 12.5,
                "tuned": 10.0,
                "delta": -2.5,
                "delta_ci95": [-3.1, -1.9],
                "n": 120,
                "lower_is_better": True,
            },
            "cost $ per $token": {
                "base": 1.0,
                "tuned": 1.1,
                "delta": 0.1,
                "delta_ci95": None,
                "n": 120,
                "lower_is_better": False,
            },
        },
        "corpus_metrics": [
            {"metric": "bleu", "base": {"score": 21.3}, "tuned": {"score": 24.1}},
        ],
        "metric_correlations": {
            "rougeL": {"spearman": 0.31, "kendall": 0.22, "sign_agreement": 0.66, "n": 100},
        },
        "metric_advice": [{"severity": "warning", "message": "BLEU is a poor fit for chat."}],
        "disagreements": [
            {
                "item_id": XSS,
                "reasons": ["split"],
                "votes": {"base": 1, "tuned": 1, "tie": 1},
                "judge_p_tuned": 0.5,
                "adjudication": None,
            },
            {
                "item_id": "item-7",
                "reasons": ["judge_disagrees"],
                "votes": {"base": 2, "tuned": 1},
                "judge_p_tuned": 0.9,
                "adjudication": {"preference": "tuned", "by": "carol", "rationale": XSS},
            },
        ],
        "decision": {
            "planned": True,
            "decided": True,
            "direction": "tuned",
            "decision": "tuned",
            "looks": 3,
            "look": 3,
            "n_items": 90,
            "z": 4.1,
            "boundary": 2.3,
            "alpha_spent": 0.012,
            "alpha": 0.05,
            "design": {"max_items": 120, "look_every_items": 30, "spending": "obrien_fleming"},
        },
        "identity_flags": {"total": 4, "pending": 1, "excluded": 2},
        "verdict": {"summary": "Tuned is preferred (61.2% win rate).", "level": "good"},
    }


@pytest.fixture(scope="module")
def full_html() -> str:
    return render_report_html(full_report())


def test_full_report_content(full_html: str) -> None:
    assert full_html.startswith("<!DOCTYPE html>")
    assert "Summaries v2" in full_html and "summ-v2" in full_html
    for number in ("0.612", "0.667", "[0.561, 0.661]", "[0.559, 0.665]", "0.583"):
        assert number in full_html
    assert "0.667" in full_html and "0.800" in full_html
    assert "tentative" in full_html  # alpha 0.712 lies between the thresholds
    assert "With ties" in full_html and "Without ties (MT-Bench convention)" in full_html
    for number in ("0.632", "0.821", "0.654", "0.877", "0.451", "-0.022", "[0.590, 0.670]"):
        assert number in full_html
    assert "Secondary: judge vs the human majority" in full_html
    assert "lower is better" in full_html
    assert "adjudicated: tuned by carol" in full_html
    assert 'class="verdict good"' in full_html
    assert "Exact settings" in full_html and "min_median_seconds" in full_html
    assert "0.1.0" in full_html and "2025-01-02T03:04:05+00:00" in full_html
    assert "cost $ per $token" in full_html  # "$" must not turn into mathtext


def test_numeric_item_ids_are_not_formatted_as_numbers() -> None:
    report = full_report()
    report["disagreements"][0]["item_id"] = 12345
    assert ">12345<" in render_report_html(report)


def test_section_order(full_html: str) -> None:
    markers = [
        "Summaries v2",
        'class="verdict',
        'id="win-rate"',
        'id="votes"',
        'id="agreement"',
        'id="raters"',
        'id="judge"',
        'id="metrics"',
        'id="corpus-metrics"',
        'id="correlations"',
        'id="advice"',
        'id="disagreements"',
        'id="decision"',
        'id="identity"',
        'id="settings"',
        "<footer>",
    ]
    positions = [full_html.index(m, full_html.index("<main>")) for m in markers]
    assert positions == sorted(positions)


def test_self_contained(full_html: str) -> None:
    assert full_html.count("<svg") == 4  # win rate, votes, agreement, metric forest plot
    assert "<script" not in full_html.lower()
    assert not EXTERNAL_REF.search(full_html)
    assert "<link" not in full_html and "<img" not in full_html and "@import" not in full_html
    assert "url(http" not in full_html
    ids = Counter(re.findall(r'\bid="([^"]+)"', full_html))
    assert [name for name, count in ids.items() if count > 1] == []
    references = set(re.findall(r'(?:href="#|url\(#)([^")]+)', full_html))
    assert references and references <= set(ids)  # every in-page reference resolves


def test_report_text_is_escaped(full_html: str) -> None:
    assert XSS not in full_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in full_html


def test_escaping_everywhere() -> None:
    report = full_report()
    report["study"]["name"] = XSS
    report["verdict"]["summary"] = XSS
    report["raters"][0]["rater"] = XSS
    report["metrics"][XSS] = report["metrics"].pop("rougeL")
    report["metric_advice"][0]["message"] = XSS
    report["metric_advice"][0]["severity"] = '"><script>'
    report["judge_human"]["judge_id"] = XSS
    report["judge_human"]["majority"]["labels"] = [XSS, "tuned", "tie"]
    report["judge_human"]["pairwise"]["unit"] = XSS
    report["corpus_metrics"][0]["metric"] = XSS
    html = render_report_html(report)
    assert "<script" not in html.lower()


def test_flagged_raters_marked(full_html: str) -> None:
    raters = full_html[full_html.index('id="raters"') : full_html.index('id="judge"')]
    assert raters.count('<tr class="flagged">') == 1
    assert "mallory" in raters and "flagged</span>" in raters
    assert "too_fast" in raters and "position_bias" in raters
    # Position bias is named by the slot raters saw, not by a screen side.
    assert "Response 1 choice rate" in raters and "0.900" in raters
    assert "left" not in raters.lower()


def test_minimal_report_degrades() -> None:
    html = render_report_html({"study": {"slug": "s", "name": "S"}})
    assert "not available" in html
    assert "<h1>S" in html
    assert "<script" not in html.lower()


@pytest.mark.parametrize(
    "report",
    [
        {},
        {"study": None, "votes": None, "win_rate": None, "agreement": None, "raters": None},
        {"votes": {"base": 0, "tuned": 0, "tie": 0, "both_bad": 0}, "items": 0, "judgments": 0},
        {"win_rate": {"tuned": float("nan"), "ci95": [None, None]}, "metrics": {}},
        {"votes": "garbage", "raters": [None, "x", {}], "metrics": {"m": None}, "judge": []},
        {"judge_human": {"majority": {"confusion": [[1, 2]], "labels": ["a", "b", "c"]}}},
        {"judge_human": {"pairwise": {"judge_human": None, "difference": "x"}}},
        {"agreement": {"krippendorff_alpha": -0.3, "krippendorff_alpha_ci95": [0.9, -0.5]}},
    ],
)
def test_partial_or_malformed_reports_render(report: dict[str, Any]) -> None:
    html = render_report_html(report)
    assert "not available" in html
    assert html.rstrip().endswith("</html>")


def test_no_judgments_yet() -> None:
    report = full_report()
    for key in ("win_rate", "length_adjusted_win_rate", "judge_human", "judge", "decision"):
        report[key] = None
    report.update(votes={}, raters=[], metrics={}, disagreements=[], agreement={})
    html = render_report_html(report)
    assert "Summaries v2" in html and "not available" in html


def test_deterministic_and_input_untouched() -> None:
    report = full_report()
    before = copy.deepcopy(report)
    assert render_report_html(report) == render_report_html(report)
    assert report == before


def test_disagreements_capped_at_200() -> None:
    report = full_report()
    report["disagreements"] = [
        {"item_id": f"item-{i}", "reasons": ["split"], "votes": {"base": 1, "tuned": 1}}
        for i in range(250)
    ]
    html = render_report_html(report)
    assert "item-199<" in html and "item-200<" not in html
    assert "Showing 200 of 250" in html


def test_broken_plot_degrades(monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.figure import Figure

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no plotting today")

    monkeypatch.setattr(Figure, "savefig", boom)
    html = render_report_html(full_report())
    assert "<svg" not in html and "plot not available" in html
    assert "Summaries v2" in html and "0.612" in html
