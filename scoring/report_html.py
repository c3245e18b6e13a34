"""A study report as one self-contained HTML file that a researcher can mail.

:func:`render_report_html` turns the JSON-serialisable report dict of
:func:`scoring.reports.build_report` into a single HTML page: inline CSS, plots as inline SVG
drawn by matplotlib (``matplotlib.figure.Figure`` directly, so neither pyplot's global state nor
the process-wide backend is touched), no scripts, no external fonts, stylesheets or images, and a
Content-Security-Policy that forbids fetching anything. Every piece of report text (study names,
rater names, item ids, model outputs, rationales, settings) is HTML-escaped; text that goes into a
plot is escaped by matplotlib's SVG writer and has its ``$`` escaped so it never turns into
mathtext.

Every key of the report is optional: a missing, null, empty or malformed section renders as
"not available" instead of raising, so the report of a study without judgments, judge or metrics
still renders. A plot that fails to draw is logged and replaced by a "plot not available" note.
"""

from __future__ import annotations

import html
import io
import json
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

NOT_AVAILABLE = "not available"
# Krippendorff (2004, "Content Analysis", 2nd ed., sec. 11.4): rely on data with alpha >= .800;
# consider data with .667 <= alpha < .800 only for tentative conclusions.
ALPHA_TENTATIVE = 0.667
ALPHA_RELIABLE = 0.800
MAX_DISAGREEMENTS = 200
TEXT_EXCERPT_CHARS = 240  # a prompt or output in the disagreement table
MAX_FOREST_ROWS = 40

_COLOURS = {
    "base": "#8a94a6",
    "tuned": "#2b6cb0",
    "tie": "#d69e2e",
    "both_bad": "#c53030",
    "good": "#2f855a",
    "bad": "#c53030",
    "neutral": "#4a5568",
    "grid": "#e2e8f0",
}
_VOTE_LABELS = {"base": "Base", "tuned": "Tuned", "tie": "Tie", "both_bad": "Both bad"}
_SEVERITIES = {"info", "warning", "error", "critical"}
_PLOT_RC = {
    "svg.fonttype": "none",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_SVG_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}
_SVG_ID_REF = re.compile(r'(\bid="|href="#|url\(#)([^")]+)')

_CSS = """
*{box-sizing:border-box}
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1a202c;
 background:#f7fafc;margin:0;line-height:1.45;font-size:14px}
main{max-width:1080px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:18px;margin:0 0 10px;border-bottom:1px solid #e2e8f0;padding-bottom:4px}
h3{font-size:15px;margin:14px 0 6px}
.slug{color:#718096;font-weight:normal;font-size:16px;font-family:ui-monospace,Menlo,Consolas,monospace}
section{background:#fff;border:1px solid #e2e8f0;border-radius:6px;padding:14px 18px;margin:14px 0;
 break-inside:avoid}
table{border-collapse:collapse;margin:6px 0;font-size:13px}
th,td{border:1px solid #e2e8f0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#edf2f7;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.kv th{width:220px}
.na{color:#a0aec0;font-style:italic}
.muted{color:#718096;font-size:12px}
.verdict{border-left:6px solid;padding:12px 16px;border-radius:4px;font-size:16px;margin:14px 0}
.verdict.good{border-color:#2f855a;background:#f0fff4}
.verdict.bad{border-color:#c53030;background:#fff5f5}
.verdict.neutral{border-color:#4a5568;background:#edf2f7}
.verdict .label{font-weight:700;text-transform:uppercase;font-size:12px;letter-spacing:.05em}
tr.flagged td{background:#fff5f5}
tr.adjudicated td{background:#f0fff4}
.badge{display:inline-block;border-radius:3px;padding:0 6px;font-size:11px;font-weight:700;
 text-transform:uppercase;letter-spacing:.03em;background:#e2e8f0;color:#2d3748}
.badge.flagged,.badge.error,.badge.critical,.badge.bad{background:#c53030;color:#fff}
.badge.warning,.badge.tentative{background:#d69e2e;color:#fff}
.badge.info,.badge.neutral{background:#4a5568;color:#fff}
.badge.good,.badge.reliable,.badge.adjudicated{background:#2f855a;color:#fff}
.better{color:#2f855a;font-weight:600}.worse{color:#c53030;font-weight:600}
pre{background:#f7fafc;border:1px solid #e2e8f0;padding:10px;overflow-x:auto;font-size:12px;
 white-space:pre-wrap;word-break:break-word}
svg.plot{max-width:100%;height:auto;display:block;margin:6px 0}
nav{font-size:12px;margin:8px 0}nav a{color:#2b6cb0;margin-right:10px;text-decoration:none}
footer{color:#718096;font-size:12px;text-align:center;margin:24px 0}
/* Phones: the document never scrolls sideways; a wide table scrolls inside its own box and
   long ids wrap. */
.scroll{max-width:100%;overflow-x:auto}
td,th{overflow-wrap:break-word}
h1,.id,.slug{overflow-wrap:anywhere}
.excerpt{white-space:pre-wrap;overflow-wrap:break-word;min-width:12em;max-width:28em;font-size:12px}
@media (max-width:600px){main{padding:12px}section{padding:10px 12px}table.kv th{width:auto}}
.rationale{color:#4a5568;font-size:12px;margin-top:2px;white-space:pre-wrap}
@media print{body{background:#fff}section{border:none;padding:0}nav{display:none}}
"""
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
# The web page adds a bar (the way back to the study, the export buttons) and their same-origin
# script, which may call the API; the exported file keeps `_CSP` and no script.
_PAGE_CSP = _CSP + "; script-src 'self'; connect-src 'self'"
_PAGE_CSS = """
.page-bar{background:#fff;border:1px solid #e2e8f0;border-radius:6px;padding:10px 14px;
 margin:0 0 14px}
.page-bar p{margin:4px 0}.page-bar a{color:#2b6cb0}
.exports h2{font-size:15px;border:none;margin:10px 0 6px;padding:0}
.export-buttons{display:flex;flex-wrap:wrap;gap:6px}
.export-buttons button{font:inherit;font-size:13px;padding:5px 10px;border:1px solid #2b6cb0;
 background:#2b6cb0;color:#fff;border-radius:4px;cursor:pointer}
.export-buttons button:disabled{opacity:.6;cursor:progress}
.export-option{display:block;font-size:12px;margin:6px 0}
.export-status{list-style:none;padding:0;margin:6px 0 0;font-size:13px;overflow-wrap:anywhere}
.export-status .error{color:#c53030}
@media print{.page-bar{display:none}}
"""


# --- small value helpers ------------------------------------------------------------------------


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _float(value: object) -> float | None:
    """A finite float, or ``None`` for anything else (bools, strings, None, nan, inf)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _ci(value: object) -> tuple[float, float] | None:
    """A ``[lo, hi]`` pair of finite floats, else ``None``."""
    items = _list(value)
    if len(items) != 2:
        return None
    lo, hi = _float(items[0]), _float(items[1])
    if lo is None or hi is None:
        return None
    return (min(lo, hi), max(lo, hi))


def _na(text: str = NOT_AVAILABLE) -> str:
    return f'<span class="na">{_esc(text)}</span>'


def _fmt(value: object, digits: int = 3) -> str:
    """HTML for one value: numbers rounded, bools as yes/no, text escaped, missing as n/a."""
    if value is None:
        return _na()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return _na()
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.{digits}f}"
    if isinstance(value, str):
        return _esc(value) if value else _na()
    return _esc(json.dumps(value, default=str, ensure_ascii=False))


def _fmt_ci(value: object, digits: int = 3) -> str:
    ci = _ci(value)
    return _na() if ci is None else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _fmt_p(value: object) -> str:
    p = _float(value)
    if p is None:
        return _na()
    return f"{p:.1e}" if 0 < p < 1e-4 else f"{p:.4f}"


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    row_classes: Sequence[str] | None = None,
    numeric: Sequence[int] = (),
    empty: str = NOT_AVAILABLE,
) -> str:
    """An HTML table; ``headers`` are plain text, ``rows`` cells already HTML."""
    if not rows:
        return f"<p>{_na(empty)}</p>"
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = []
    for index, row in enumerate(rows):
        css = row_classes[index] if row_classes and row_classes[index] else ""
        cells = "".join(
            f'<td class="num">{cell}</td>' if col in numeric else f"<td>{cell}</td>"
            for col, cell in enumerate(row)
        )
        body.append(f'<tr class="{css}">{cells}</tr>' if css else f"<tr>{cells}</tr>")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def _kv_table(pairs: Sequence[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><th>{_esc(k)}</th><td>{v}</td></tr>" for k, v in pairs)
    return f'<div class="scroll"><table class="kv"><tbody>{rows}</tbody></table></div>'


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{_esc(title)}</h2>{body}</section>'


def _extra_pairs(data: Mapping[str, Any], known: set[str]) -> list[tuple[str, str]]:
    """Key/value rows for keys a section has beyond the ones laid out explicitly."""
    return [
        (key.replace("_", " ").capitalize(), _fmt(value))
        for key, value in data.items()
        if key not in known and not isinstance(value, dict | list)
    ]


# --- plots --------------------------------------------------------------------------------------


def _mpl_text(value: object) -> str:
    """Report text for a plot label: ``$`` escaped so matplotlib never parses it as mathtext."""
    text = str(value).replace("$", r"\$")
    return text if len(text) <= 48 else text[:47] + "…"


def _prefix_svg_ids(svg: str, prefix: str) -> str:
    """Make element ids unique across the several SVGs inlined into one document."""
    ids = set(re.findall(r'\bid="([^"]+)"', svg))

    def rename(match: re.Match[str]) -> str:
        name = match.group(2)
        return match.group(1) + (f"{prefix}-{name}" if name in ids else name)

    return _SVG_ID_REF.sub(rename, svg)


def _svg(name: str, figsize: tuple[float, float], draw: Callable[[Figure], None]) -> str:
    """Draw a figure and return it as an inline ``<svg>`` element (or a note if drawing fails)."""
    try:
        # A fixed salt per plot keeps the output reproducible and the ids distinct between plots.
        with mpl.rc_context({**_PLOT_RC, "svg.hashsalt": f"report-{name}"}):
            fig = Figure(figsize=figsize, layout="constrained")
            try:
                draw(fig)
                buffer = io.BytesIO()
                fig.savefig(buffer, format="svg", metadata=_SVG_METADATA)
            finally:
                fig.clear()
    except Exception:  # a broken plot must not cost the whole report
        logger.exception("report plot %s failed", name)
        return f"<p>{_na('plot not available')}</p>"
    svg = buffer.getvalue().decode("utf-8")
    svg = svg[svg.find("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.DOTALL)
    svg = svg.replace("<svg ", f'<svg class="plot" role="img" aria-label="{_esc(name)} plot" ', 1)
    return _prefix_svg_ids(svg, name)


def _interval_rows(
    ax: Axes,
    rows: Sequence[tuple[str, float, tuple[float, float] | None, str]],
) -> None:
    """Point estimates with horizontal CI bars, first row at the top."""
    for index, (_, value, ci, colour) in enumerate(rows):
        y = len(rows) - 1 - index
        if ci is not None:
            ax.plot(ci, (y, y), color=colour, linewidth=2.2, solid_capstyle="butt")
            ax.plot(ci, (y, y), linestyle="none", marker="|", markersize=9, color=colour)
        ax.plot(value, y, marker="o", markersize=6, color=colour, zorder=3)
    ax.set_yticks(range(len(rows)), labels=[_mpl_text(r[0]) for r in reversed(rows)])
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.tick_params(axis="y", length=0)
    ax.grid(axis="x", color=_COLOURS["grid"], linewidth=0.6)
    ax.set_axisbelow(True)


def _win_rate_plot(rows: Sequence[tuple[str, float, tuple[float, float] | None, str]]) -> str:
    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        ax.axvline(0.5, color="#4a5568", linestyle="--", linewidth=1)
        _interval_rows(ax, rows)
        lo = min([0.0] + [r[2][0] for r in rows if r[2]] + [r[1] for r in rows])
        hi = max([1.0] + [r[2][1] for r in rows if r[2]] + [r[1] for r in rows])
        ax.set_xlim(lo, hi)
        ax.set_xlabel("tuned win rate  (← base better · 0.5 = no difference · tuned better →)")

    return _svg("winrate", (6.0, 0.7 + 0.32 * len(rows)), draw)


def _votes_plot(counts: Sequence[tuple[str, int]]) -> str:
    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        labels = [_VOTE_LABELS[key] for key, _ in counts]
        values = [value for _, value in counts]
        bars = ax.barh(
            range(len(counts)), values, color=[_COLOURS[key] for key, _ in counts], height=0.65
        )
        ax.bar_label(bars, labels=[f"{v:,}" for v in values], padding=3, fontsize=8)
        ax.set_yticks(range(len(counts)), labels=labels)
        ax.invert_yaxis()
        ax.set_xlim(0, max(max(values), 1) * 1.12)
        ax.tick_params(axis="y", length=0)
        ax.set_xlabel("votes")

    return _svg("votes", (6.0, 0.5 + 0.3 * len(counts)), draw)


def _agreement_plot(rows: Sequence[tuple[str, float, tuple[float, float] | None, str]]) -> str:
    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        lo = min([0.0] + [r[2][0] for r in rows if r[2]] + [r[1] for r in rows]) - 0.05
        ax.axvspan(lo, ALPHA_TENTATIVE, color="#fff5f5", zorder=0)
        ax.axvspan(ALPHA_TENTATIVE, ALPHA_RELIABLE, color="#fffaf0", zorder=0)
        ax.axvspan(ALPHA_RELIABLE, 1.0, color="#f0fff4", zorder=0)
        top = {"transform": ax.get_xaxis_transform(), "fontsize": 7, "color": "#4a5568"}
        for x in (ALPHA_TENTATIVE, ALPHA_RELIABLE):
            ax.axvline(x, color="#4a5568", linestyle="--", linewidth=1)
            ax.text(x, 1.01, f"{x:.3f}", ha="center", va="bottom", **top)
        bands = (
            (lo, ALPHA_TENTATIVE, "unreliable"),
            (ALPHA_TENTATIVE, ALPHA_RELIABLE, "tentative"),
        )
        for start, end, text in (*bands, (ALPHA_RELIABLE, 1.0, "reliable")):
            ax.text((start + end) / 2, 0.97, text, ha="center", va="top", style="italic", **top)
        _interval_rows(ax, rows)
        ax.set_ylim(-0.6, len(rows) - 0.4 + 0.45)  # headroom for the band names
        ax.set_xlim(lo, 1.0)
        ax.set_xlabel("chance-corrected agreement (bands: Krippendorff's thresholds for α)")

    return _svg("agreement", (6.0, 0.9 + 0.3 * len(rows)), draw)


def _forest_plot(
    rows: Sequence[tuple[str, float, tuple[float, float] | None, str]],
) -> str:
    """One small axis per metric: metrics have different scales, so each gets its own x axis."""

    def draw(fig: Figure) -> None:
        axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
        for ax, (label, delta, ci, colour) in zip(axes, rows, strict=True):
            ax.axvline(0, color="#4a5568", linewidth=1)
            if ci is not None:
                ax.plot(ci, (0, 0), color=colour, linewidth=2.2, solid_capstyle="butt")
                ax.plot(ci, (0, 0), linestyle="none", marker="|", markersize=9, color=colour)
            ax.plot(delta, 0, marker="D", markersize=5, color=colour, zorder=3)
            points = [0.0, delta, *(ci or ())]
            lo, hi = min(points), max(points)
            pad = (hi - lo) * 0.12 or max(abs(delta), 1.0) * 0.5
            ax.set_xlim(lo - pad, hi + pad)
            ax.set_ylim(-1, 1)
            ax.set_yticks([0], labels=[_mpl_text(label)])
            ax.tick_params(axis="y", length=0)
            ax.tick_params(axis="x", labelsize=6, length=2, pad=1)
            ax.spines["left"].set_visible(False)
        axes[-1].set_xlabel("Δ = tuned − base (each metric on its own scale; line at 0)")

    return _svg("forest", (6.0, 0.4 + 0.5 * len(rows)), draw)


# --- sections -----------------------------------------------------------------------------------


def _header(report: Mapping[str, Any]) -> str:
    study = _dict(report.get("study"))
    name = study.get("name") or "Untitled study"
    slug = study.get("slug")
    title = f"<h1>{_esc(name)}"
    if slug:
        title += f' <span class="slug">{_esc(slug)}</span>'
    title += "</h1>"
    overlap = _fmt(study.get("overlap"))
    if study.get("max_overlap") is not None:
        overlap += f" (max {_fmt(study.get('max_overlap'))})"
    fields = [
        ("Task type", study.get("task_type")),
        ("Status", study.get("status")),
        ("Base model", study.get("base_model")),
        ("Tuned model", study.get("tuned_model")),
        ("Overlap (votes per item)", study.get("overlap")),
        ("Queue order", study.get("queue_order")),
        ("Items", report.get("items")),
        ("Judgments", report.get("judgments")),
        ("Gold items", report.get("gold_items")),
    ]
    pairs = [
        (label, overlap if label.startswith("Overlap") else _fmt(value))
        for label, value in fields
        if value not in (None, "")
    ]
    return title + (_kv_table(pairs) if pairs else f"<p>Study details: {_na()}</p>")


def _verdict(report: Mapping[str, Any]) -> str:
    verdict = _dict(report.get("verdict"))
    summary = verdict.get("summary")
    level = verdict.get("level") if verdict.get("level") in {"good", "bad", "neutral"} else None
    css = level or "neutral"
    text = _esc(summary) if isinstance(summary, str) and summary else _na("verdict not available")
    label = f"Verdict · {level}" if level else "Verdict"
    return (
        f'<div class="verdict {css}" id="verdict"><div class="label">{_esc(label)}</div>'
        f"{text}</div>"
    )


def _win_rate(report: Mapping[str, Any]) -> str:
    wr = _dict(report.get("win_rate"))
    la = _dict(report.get("length_adjusted_win_rate"))
    humans, judge = _dict(la.get("humans")), _dict(la.get("judge"))
    if not wr and not la:
        return _section("win-rate", "Win rate", f"<p>{_na()}</p>")
    tuned = _float(wr.get("tuned"))
    parts = []
    if tuned is None:
        parts.append(f"<p>Tuned win rate: {_na()}</p>")
    else:
        ci_text = f", 95% CI {_fmt_ci(wr['ci95'])} over items" if _ci(wr.get("ci95")) else ""
        parts.append(
            f"<p>Tuned win rate (ties count ½): <strong>{tuned:.3f}</strong>{ci_text}"
            f" from {_fmt(wr.get('n'))} votes on {_fmt(wr.get('n_items'))} items; "
            f"p = {_fmt_p(wr.get('p_value'))} (item-level sign-flip test against 0.5).</p>"
        )
    counts = [wr.get(key) for key in ("tuned_wins", "base_wins", "ties")]
    pairs = [
        ("Win rate, ties count ½", _fmt(wr.get("tuned"))),
        ("95% CI, item level (primary)", _fmt_ci(wr.get("ci95"))),
        ("95% CI, items and raters (panel)", _fmt_ci(wr.get("panel_ci95"))),
        ("Win rate, ties excluded", _fmt(wr.get("tuned_no_ties"))),
        ("95% CI, ties excluded", _fmt_ci(wr.get("ci95_no_ties"))),
        ("Tuned wins / base wins / ties", " / ".join(_fmt(c) for c in counts)),
        (
            "p-value (mid-p / exact)",
            f"{_fmt_p(wr.get('p_value'))} / {_fmt_p(wr.get('p_value_exact'))}",
        ),
        ("Design effect", _fmt(wr.get("design_effect"))),
        ("Effective independent votes", _fmt(wr.get("effective_n"))),
        (
            "Votes / items / raters",
            f"{_fmt(wr.get('n'))} / {_fmt(wr.get('n_items'))} / {_fmt(wr.get('n_raters'))}",
        ),
        ("Largest share of votes by one rater", _fmt(wr.get("top_rater_share"))),
        ("Length-adjusted win rate, human votes", _fmt(humans.get("value"))),
        ("Length-adjusted 95% CI (item-clustered)", _fmt_ci(humans.get("ci95"))),
        ("Length-adjusted win rate, judge probabilities", _fmt(judge.get("value"))),
    ]
    for gate_method, gate in sorted(_dict(wr.get("gate")).items()):
        gate = _dict(gate)
        pairs.append((f"Gate ({_esc(gate_method)} interval)", _fmt(gate.get("status"))))
    parts.append(_kv_table(pairs))
    generalises = _dict(wr.get("generalises_to"))
    notes = [str(n) for n in _list(wr.get("warnings")) if isinstance(n, str)]
    if wr.get("interval_units"):
        parts.append(f'<p class="muted">{_esc(wr.get("interval_units"))}</p>')
    if generalises:
        parts.append(
            "<ul>"
            + "".join(
                f"<li><strong>{_esc(k)}</strong>: {_esc(v)}</li>"
                for k, v in sorted(generalises.items())
            )
            + "</ul>"
        )
    if notes:
        parts.append(
            '<ul class="warnings">' + "".join(f"<li>{_esc(n)}</li>" for n in notes) + "</ul>"
        )
    if la:
        parts.append(
            f'<p class="muted">{_esc(la.get("name") or "")}: {_esc(la.get("not") or "")}.</p>'
        )
    rows: list[tuple[str, float, tuple[float, float] | None, str]] = []
    if tuned is not None:
        rows.append(("Win rate, item-level CI", tuned, _ci(wr.get("ci95")), _COLOURS["tuned"]))
        if _ci(wr.get("panel_ci95")):
            rows.append(("Win rate, panel CI", tuned, _ci(wr.get("panel_ci95")), _COLOURS["tuned"]))
    no_ties = _float(wr.get("tuned_no_ties"))
    if no_ties is not None:
        rows.append(("Ties excluded", no_ties, _ci(wr.get("ci95_no_ties")), _COLOURS["neutral"]))
    adjusted = _float(humans.get("value"))
    if adjusted is not None:
        rows.append(("Length-adjusted", adjusted, _ci(humans.get("ci95")), _COLOURS["tie"]))
    if rows:
        parts.append(_win_rate_plot(rows))
    return _section("win-rate", "Win rate", "".join(parts))


def _votes(report: Mapping[str, Any]) -> str:
    votes = _dict(report.get("votes"))
    counts = [
        (key, int(votes[key]))
        for key in _VOTE_LABELS
        if isinstance(votes.get(key), int) and not isinstance(votes.get(key), bool)
    ]
    if not counts:
        return _section("votes", "Vote counts", f"<p>{_na()}</p>")
    total = sum(value for _, value in counts)
    rows = [
        [
            _esc(_VOTE_LABELS[key]),
            f"{value:,}",
            f"{value / total:.1%}" if total else _na(),
        ]
        for key, value in counts
    ]
    body = _table(["Vote", "Count", "Share"], rows, numeric=(1, 2))
    if total:
        body += _votes_plot(counts)
    return _section("votes", "Vote counts", body)


def _alpha_band(alpha: float | None, ci: tuple[float, float] | None) -> str:
    if alpha is None:
        return f"<p>Krippendorff's α: {_na()}</p>"
    if alpha >= ALPHA_RELIABLE:
        badge, css = "reliable", "reliable"
        band = f"at or above {ALPHA_RELIABLE:.3f}: reliable enough to draw conclusions"
    elif alpha >= ALPHA_TENTATIVE:
        badge, css = "tentative", "tentative"
        band = (
            f"between {ALPHA_TENTATIVE:.3f} and {ALPHA_RELIABLE:.3f}: "
            "only tentative conclusions are warranted"
        )
    else:
        badge, css = "unreliable", "bad"
        band = f"below {ALPHA_TENTATIVE:.3f}: too unreliable to draw conclusions from"
    text = (
        f"<p>Krippendorff's α = <strong>{alpha:.3f}</strong> "
        f'<span class="badge {css}">{badge}</span> is {_esc(band)}.'
    )
    if ci is not None:
        crossed = [t for t in (ALPHA_TENTATIVE, ALPHA_RELIABLE) if ci[0] < t < ci[1]]
        if crossed:
            text += (
                " Its 95% CI " + _fmt_ci(ci) + " spans " + " and ".join(f"{t:.3f}" for t in crossed)
            )
            text += ", so the band is uncertain."
    text += (
        f' <span class="muted">Thresholds: α ≥ {ALPHA_RELIABLE:.3f} reliable, '
        f"{ALPHA_TENTATIVE:.3f} ≤ α &lt; {ALPHA_RELIABLE:.3f} tentative "
        "(Krippendorff 2004).</span></p>"
    )
    return text


def _agreement(report: Mapping[str, Any]) -> str:
    agreement = _dict(report.get("agreement"))
    if not agreement:
        return _section("agreement", "Inter-rater agreement", f"<p>{_na()}</p>")
    coefficients = [
        ("Krippendorff's α (nominal)", "krippendorff_alpha", True),
        ("Fleiss' κ", "fleiss_kappa", True),
        ("Gwet's AC1", "gwet_ac1", True),
        ("Mean pairwise Cohen's κ", "cohen_kappa_mean", True),
        ("Percent agreement", "percent_agreement", False),
    ]
    rows = [
        [_esc(label), _fmt(agreement.get(key)), _fmt_ci(agreement.get(f"{key}_ci95"))]
        for label, key, _ in coefficients
    ]
    alpha = _float(agreement.get("krippendorff_alpha"))
    alpha_ci = _ci(agreement.get("krippendorff_alpha_ci95"))
    body = _alpha_band(alpha, alpha_ci)
    body += _table(["Coefficient", "Value", "95% CI"], rows, numeric=(1, 2))
    body += (
        f'<p class="muted">{_fmt(agreement.get("n_items"))} items, '
        f"{_fmt(agreement.get('n_raters'))} raters. Percent agreement is not chance-corrected "
        "and is left out of the plot.</p>"
    )
    plot_rows = []
    for label, key, chance_corrected in coefficients:
        value = _float(agreement.get(key))
        if chance_corrected and value is not None:
            colour = _COLOURS["tuned"] if key == "krippendorff_alpha" else _COLOURS["base"]
            plot_rows.append((label, value, _ci(agreement.get(f"{key}_ci95")), colour))
    if plot_rows:
        body += _agreement_plot(plot_rows)
    return _section("agreement", "Inter-rater agreement", body)


def _raters(report: Mapping[str, Any]) -> str:
    options = _dict(report.get("options"))
    excluded = [str(name) for name in _list(options.get("excluded_raters"))]
    raters = [r for r in _list(report.get("raters")) if isinstance(r, dict)]
    rows, classes = [], []
    for rater in raters:
        flags = [str(f) for f in _list(rater.get("flags"))]
        flagged = bool(rater.get("flagged")) or bool(flags)
        name = _esc(rater.get("rater", "?"))
        if flagged:
            name += ' <span class="badge flagged">flagged</span>'
        if str(rater.get("rater")) in excluded:
            name += ' <span class="badge">excluded</span>'
        rows.append(
            [
                name,
                _fmt(rater.get("votes")),
                _fmt(rater.get("median_seconds"), 1),
                _fmt(rater.get("response_1_rate")),
                _fmt_p(rater.get("response_1_p_value")),
                _fmt(rater.get("loo_agreement")),
                _fmt(rater.get("gold_accuracy")),
                ", ".join(_esc(f) for f in flags) if flags else "—",
            ]
        )
        classes.append("flagged" if flagged else "")
    n_flagged = classes.count("flagged")
    body = _table(
        [
            "Rater",
            "Votes",
            "Median s/vote",
            "Response 1 choice rate",
            "Response 1 p-value",
            "Agreement with others (LOO)",
            "Gold accuracy",
            "Flags",
        ],
        rows,
        row_classes=classes,
        numeric=(1, 2, 3, 4, 5, 6),
    )
    if raters:
        exclude = options.get("exclude_flagged_raters")
        note = f"{n_flagged} of {len(raters)} raters flagged."
        if exclude is not None:
            note += " Flagged raters are " + ("excluded from" if exclude else "kept in")
            note += " the statistics above."
        if excluded:
            note += " Excluded raters: " + ", ".join(excluded) + "."
        body = f'<p class="muted">{_esc(note)}</p>' + body
    return _section("raters", "Raters", body)


def _confusion(judge_human: Mapping[str, Any]) -> str:
    labels = [str(label) for label in _list(judge_human.get("labels"))] or ["base", "tuned", "tie"]
    matrix = [_list(row) for row in _list(judge_human.get("confusion"))]
    counts = [[_float(cell) for cell in row] for row in matrix]
    if (
        not counts
        or len(counts) != len(labels)
        or any(len(row) != len(labels) or None in row for row in counts)
    ):
        return f"<p>Confusion matrix: {_na()}</p>"
    peak = max((cell for row in counts for cell in row if cell is not None), default=0.0) or 1.0
    head = "".join(f"<th>judge: {_esc(label)}</th>" for label in labels)
    body = []
    for i, (label, row) in enumerate(zip(labels, counts, strict=True)):
        cells = []
        for j, cell in enumerate(row):
            value = cell or 0.0
            shade = 0.08 + 0.55 * value / peak
            colour = "#fff" if shade > 0.45 else "#1a202c"
            weight = "font-weight:700;" if i == j else ""
            text = f"{int(value):,}" if float(value).is_integer() else f"{value:.2f}"
            cells.append(
                f'<td class="num" style="{weight}background:rgba(43,108,176,{shade:.2f});'
                f'color:{colour}">{text}</td>'
            )
        body.append(f"<tr><th>human: {_esc(label)}</th>{''.join(cells)}</tr>")
    return (
        '<h3>Confusion matrix</h3><p class="muted">Rows: human majority; columns: judge; '
        "diagonal = agreement.</p>"
        f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def _judge(report: Mapping[str, Any]) -> str:
    judge = _dict(report.get("judge"))
    judge_human = _dict(report.get("judge_human"))
    if not judge and not judge_human:
        return _section(
            "judge", "LLM judge vs humans", f"<p>{_na('not available (no LLM judge)')}</p>"
        )
    body = ""
    if judge:
        body += "<h3>Judge on its own</h3>" + _kv_table(
            [
                ("Judge tuned win rate", _fmt(judge.get("tuned_win_rate"))),
                ("Position-bias rate", _fmt(judge.get("position_bias_rate"))),
                ("Pairs judged", _fmt(judge.get("n"))),
            ]
        )
    if not judge_human:
        body += f"<p>Judge vs humans: {_na()}</p>"
        return _section("judge", "LLM judge vs humans", body)
    pairwise = _dict(judge_human.get("pairwise"))

    def agreement_cell(entry: Any) -> str:
        entry = _dict(entry)
        ci = _list(entry.get("ci95"))
        text = _fmt(entry.get("agreement"))
        if len(ci) == 2:
            text += f' <span class="muted">[{_fmt(ci[0])}, {_fmt(ci[1])}]</span>'
        return text

    def difference_cell(entry: Any) -> str:
        entry = _dict(entry)
        ci = _list(entry.get("ci95"))
        text = _fmt(entry.get("value"))
        if len(ci) == 2:
            text += f' <span class="muted">[{_fmt(ci[0])}, {_fmt(ci[1])}]</span>'
        return text

    body += (
        f"<h3>The judge scored as one more rater</h3><p>Judge "
        f"<strong>{_fmt(judge_human.get('judge_id'))}</strong> on "
        f"{_fmt(pairwise.get('n_items'))} items with human votes: its verdict is paired with each "
        "human vote on the item, exactly as each human vote is paired with every other, so the "
        "two figures compare directly.</p>"
    )
    body += _table(
        ["", "With ties", "Without ties (MT-Bench convention)"],
        [
            [
                "Judge vs each human vote",
                agreement_cell(pairwise.get("judge_human")),
                agreement_cell(pairwise.get("judge_human_without_ties")),
            ],
            [
                "Human vs human",
                agreement_cell(pairwise.get("human_human")),
                agreement_cell(pairwise.get("human_human_without_ties")),
            ],
            [
                "Judge minus human",
                difference_cell(pairwise.get("difference")),
                difference_cell(pairwise.get("difference_without_ties")),
            ],
        ],
        numeric=(1, 2),
    )
    body += f'<p class="muted">Unit: {_esc(pairwise.get("unit") or "")}.</p>'
    majority = _dict(judge_human.get("majority"))
    if majority:
        body += (
            "<h3>Secondary: judge vs the human majority</h3>"
            f'<p class="muted">{_esc(majority.get("label") or "")}. Items: '
            f"{_fmt(majority.get('n'))}; agreement {_fmt(majority.get('agreement'))}, without "
            f"ties {_fmt(majority.get('agreement_non_tie'))}; Cohen's κ "
            f"{_fmt(majority.get('cohen_kappa'))}.</p>"
        )
        body += _confusion(majority)
    return _section("judge", "LLM judge vs humans", body)


def _metrics(report: Mapping[str, Any]) -> str:
    metrics = _dict(report.get("metrics"))
    rows, plot_rows = [], []
    for name, raw in metrics.items():
        data = _dict(raw)
        lower = bool(data.get("lower_is_better"))
        delta = _float(data.get("delta"))
        ci = _ci(data.get("delta_ci95"))
        reading, colour = _na(), _COLOURS["base"]
        if delta is not None:
            improves = delta < 0 if lower else delta > 0
            if ci is not None and (ci[0] > 0 or ci[1] < 0):
                reading = (
                    '<span class="better">tuned better</span>'
                    if improves
                    else '<span class="worse">tuned worse</span>'
                )
                colour = _COLOURS["good"] if improves else _COLOURS["bad"]
            elif ci is not None:
                reading = "no clear difference (CI includes 0)"
            else:
                reading = "tuned better (no CI)" if improves else "tuned not better (no CI)"
        label = _esc(name)
        if data.get("version") not in (None, ""):
            label += f' <span class="muted">v{_esc(data["version"])}</span>'
        if lower:
            label += ' <span class="muted">(lower is better)</span>'

        rows.append(
            [
                label,
                _fmt(data.get("n")),
                _fmt(data.get("base"), 4),
                _fmt(data.get("tuned"), 4),
                _fmt(data.get("delta"), 4),
                _fmt_ci(data.get("delta_ci95"), 4),
                reading,
            ]
        )
        if delta is not None:
            plot_rows.append(
                (f"{name} (lower is better)" if lower else str(name), delta, ci, colour)
            )
    body = _table(
        ["Metric", "n", "Base", "Tuned", "Δ (tuned − base)", "95% CI of Δ", "Reading"],
        rows,
        numeric=(1, 2, 3, 4, 5),
    )
    if rows and any(bool(_dict(m).get("lower_is_better")) for m in metrics.values()):
        body += (
            '<p class="muted">For metrics marked "lower is better" (e.g. perplexity), a '
            "negative Δ favours the tuned model.</p>"
        )
    if plot_rows:
        shown = plot_rows[:MAX_FOREST_ROWS]
        body += _forest_plot(shown)
        if len(plot_rows) > len(shown):
            body += f'<p class="muted">Plot shows the first {len(shown)} metrics.</p>'
    return _section("metrics", "Metric deltas (per item, tuned − base)", body)


def _corpus_metrics(report: Mapping[str, Any]) -> str:
    rows = []
    for entry in _list(report.get("corpus_metrics")):
        data = _dict(entry)
        base, tuned = _dict(data.get("base")), _dict(data.get("tuned"))
        keys = list(dict.fromkeys([*base, *tuned]))
        for key in keys or [None]:
            b = base.get(key) if key is not None else None
            t = tuned.get(key) if key is not None else None
            fb, ft = _float(b), _float(t)
            rows.append(
                [
                    _fmt(data.get("metric")),
                    _fmt(key),
                    _fmt(b, 4),
                    _fmt(t, 4),
                    _fmt(ft - fb, 4) if fb is not None and ft is not None else _na(),
                ]
            )
    body = _table(["Metric", "Statistic", "Base", "Tuned", "Δ"], rows, numeric=(2, 3, 4))
    return _section("corpus-metrics", "Corpus metrics", body)


def _correlations(report: Mapping[str, Any]) -> str:
    rows = [
        [
            _esc(name),
            _fmt(_dict(data).get("spearman")),
            _fmt(_dict(data).get("kendall")),
            _fmt(_dict(data).get("sign_agreement")),
            _fmt(_dict(data).get("n")),
        ]
        for name, data in _dict(report.get("metric_correlations")).items()
    ]
    body = _table(
        ["Metric", "Spearman ρ", "Kendall τ-b", "Sign agreement", "n"], rows, numeric=(1, 2, 3, 4)
    )
    if rows:
        body += (
            '<p class="muted">Correlation between the per-item metric Δ and the human preference '
            "(tuned = 1, tie = 0.5, base = 0); sign agreement over items with a decisive "
            "majority.</p>"
        )
    return _section("correlations", "Metrics vs human preference", body)


def _advice(report: Mapping[str, Any]) -> str:
    items = []
    for entry in _list(report.get("metric_advice")):
        data = _dict(entry)
        message = data.get("message") if data else entry
        if message is None or message == "":
            continue
        severity = str(data.get("severity") or "info")
        css = severity.lower() if severity.lower() in _SEVERITIES else "info"
        items.append(f'<li><span class="badge {css}">{_esc(severity)}</span> {_esc(message)}</li>')
    body = f"<ul>{''.join(items)}</ul>" if items else f"<p>{_na()}</p>"
    return _section("advice", "Metric advice", body)


def _votes_text(votes: object) -> str:
    data = _dict(votes)
    if not data:
        return _na()
    return " · ".join(f"{_esc(_VOTE_LABELS.get(k, k))} {_fmt(v)}" for k, v in data.items())


def _excerpt(value: object, limit: int = TEXT_EXCERPT_CHARS) -> str:
    """HTML for a prompt or an output, cut at `limit` characters (the exports carry it whole)."""
    if not isinstance(value, str) or not value.strip():
        return _na()
    text = value.strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return f'<div class="excerpt">{_esc(text)}</div>'


def _disagreements(report: Mapping[str, Any]) -> str:
    entries = [e for e in _list(report.get("disagreements")) if isinstance(e, dict)]
    shown = entries[:MAX_DISAGREEMENTS]
    # Texts are added for readers (`scoring.reports.disagreement_texts`); a report without them
    # keeps the table narrow instead of three columns of "not available".
    with_texts = any("prompt" in entry for entry in shown)
    rows, classes = [], []
    for entry in shown:
        adjudication = _dict(entry.get("adjudication"))
        if adjudication:
            cell = (
                f'<span class="badge adjudicated">adjudicated</span> '
                f"adjudicated: {_esc(adjudication.get('preference', '?'))} "
                f"by {_esc(adjudication.get('by', '?'))}"
            )
            if adjudication.get("rationale"):
                cell += f'<div class="rationale">{_esc(adjudication["rationale"])}</div>'
        else:
            cell = "not adjudicated"
        reasons = [_esc(r) for r in _list(entry.get("reasons"))]
        item = entry.get("item_id")
        row = [f'<span class="id">{_esc(item)}</span>' if item not in (None, "") else _na()]
        if with_texts:
            row += [
                _excerpt(entry.get("prompt")),
                _excerpt(entry.get("base_output")),
                _excerpt(entry.get("tuned_output")),
            ]
        row += [
            ", ".join(reasons) if reasons else _na(),
            _votes_text(entry.get("votes")),
            _fmt(entry.get("judge_p_tuned")),
            cell,
        ]
        rows.append(row)
        classes.append("adjudicated" if adjudication else "")
    body = ""
    if entries:
        n_adjudicated = classes.count("adjudicated")
        body += (
            f'<p class="muted">Showing {len(shown)} of {len(entries)} items worth a second look '
            f"({n_adjudicated} of those shown adjudicated).</p>"
        )
    headers = ["Item"]
    if with_texts:
        headers += ["Prompt", "Base output", "Tuned output"]
    headers += ["Reasons", "Votes", "Judge P(tuned)", "Adjudication"]
    body += _table(
        headers,
        rows,
        row_classes=classes,
        numeric=(len(headers) - 2,),
        empty="not available (no disagreements listed)",
    )
    if with_texts and rows:
        body += (
            f'<p class="muted">Prompts and outputs are cut at {TEXT_EXCERPT_CHARS} characters '
            "here; the item rows export (CSV, JSONL) and the JSON report hold them in full.</p>"
        )
    return _section("disagreements", "Disagreements", body)


def _decision(report: Mapping[str, Any]) -> str:
    decision = _dict(report.get("decision"))
    if not decision:
        return _section("decision", "Sequential decision", f"<p>{_na()}</p>")
    if not decision.get("planned"):
        body = f"<p>Not planned yet: {_esc(decision.get('explanation') or '')}.</p>"
        return _section("decision", "Sequential decision", body)
    direction = decision.get("direction")
    if decision.get("decided"):
        head = f"Decided at look {_fmt(decision.get('look'))}: <strong>{_esc(direction)}</strong>"
        head += " is preferred."
    elif decision.get("finished"):
        head = "Finished without a decision: the last look did not cross its boundary."
    elif not decision.get("looks"):
        head = f"No look yet: the first comes at {_fmt(decision.get('next_look_items'))} items."
    else:
        head = (
            f"Not decided after {_fmt(decision.get('looks'))} look(s); the next comes at "
            f"{_fmt(decision.get('next_look_items'))} completed items"
        )
        needed = decision.get("items_needed")
        if isinstance(needed, int) and not isinstance(needed, bool):
            head += f"; at the current effect about {needed:,} more items"
            if decision.get("items_needed_capped"):
                head += " (capped at the planned maximum)"
        head += "."
    design = _dict(decision.get("design"))
    pairs = [
        ("Decision", _fmt(decision.get("decision"))),
        ("Looks recorded", _fmt(decision.get("looks"))),
        ("Items at the last look", _fmt(decision.get("n_items"))),
        ("z (item-clustered score)", _fmt(decision.get("z"))),
        ("Boundary |z|", _fmt(decision.get("boundary"))),
        ("Information fraction", _fmt(decision.get("information_fraction"))),
        (
            "Alpha spent / total",
            f"{_fmt(decision.get('alpha_spent'))} / {_fmt(decision.get('alpha'))}",
        ),
        ("Planned maximum items", _fmt(design.get("max_items"))),
        ("A look every (items)", _fmt(design.get("look_every_items"))),
        ("Spending function", _fmt(design.get("spending"))),
    ]
    body = f"<p>{head}</p>" + _kv_table(pairs)
    body += (
        '<p class="muted">Unit: completed items. Each look is recorded once when the evidence '
        "changes, so reading or rebuilding this report spends no alpha; Lan-DeMets alpha "
        "spending keeps the overall false-positive rate at alpha however many looks are "
        "taken.</p>"
    )
    return _section("decision", "Sequential decision", body)


def _identity_flags(report: Mapping[str, Any]) -> str:
    flags = _dict(report.get("identity_flags"))
    if not flags:
        return _section("identity", "Identity-leak flags", f"<p>{_na()}</p>")
    pairs = [
        ("Total", _fmt(flags.get("total"))),
        ("Pending (items held from raters)", _fmt(flags.get("pending"))),
        ("Excluded", _fmt(flags.get("excluded"))),
        *_extra_pairs(flags, {"total", "pending", "excluded"}),
    ]
    body = _kv_table(pairs)
    body += (
        '<p class="muted">Outputs that name their own model or maker, which would break the '
        "blinding.</p>"
    )
    return _section("identity", "Identity-leak flags", body)


def _json_block(value: object) -> str:
    if value is None:
        return f"<p>{_na()}</p>"
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return f"<pre>{_esc(text)}</pre>"


def _settings(report: Mapping[str, Any]) -> str:
    study = _dict(report.get("study"))
    body = "<h3>Study settings</h3>" + _json_block(study.get("settings"))
    body += "<h3>Report options</h3>" + _json_block(report.get("options"))
    return _section("settings", "Exact settings", body)


def _footer(report: Mapping[str, Any]) -> str:
    version, generated = report.get("software_version"), report.get("generated_at")
    schema = report.get("schema_version")
    text = "Generated by evalplatform"
    text += f" {_fmt(version)}" if version not in (None, "") else f" (version {_na()})"
    text += f" at {_fmt(generated)}" if generated not in (None, "") else f" (time {_na()})"
    if schema is not None:
        text += f" · report schema {_fmt(schema)}"
    return f"<footer>{text}</footer>"


def _training_plot(curves: Mapping[str, Any], best_step: float | None) -> str:
    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        for key, label in (("train", "train loss"), ("validation", "validation loss")):
            points = [
                p for p in _list(curves.get(key)) if isinstance(p, list | tuple) and len(p) == 2
            ]
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
        if best_step is not None:
            ax.axvline(best_step, linestyle="--", color="grey", label="best validation")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend()

    return _svg("training", (6.0, 2.6), draw)


def _release(report: Mapping[str, Any]) -> str:
    """Release evidence (present when the report comes from a training run): the train and
    validation curves, the overfitting and forgetting detectors and the policy's criteria."""
    release = _dict(report.get("release"))
    if not release:
        return _section(
            "release", "Release evidence", f"<p>{_na('no training run for this study')}</p>"
        )
    parts = []
    overfitting = _dict(release.get("overfitting"))
    if overfitting.get("evaluated"):
        parts.append(
            _training_plot(
                _dict(overfitting.get("curves")), _float(overfitting.get("best_validation_step"))
            )
        )
        parts.append(
            _kv_table(
                [
                    ("Status", _fmt(overfitting.get("status"))),
                    ("Overfitting flagged", "yes" if overfitting.get("flagged") else "no"),
                    (
                        "Checkpoint judged (source)",
                        f"{_fmt(overfitting.get('checkpoint_step'), 0)} "
                        f"({_esc(overfitting.get('checkpoint_source'))})",
                    ),
                    (
                        "Checkpoint train / validation loss",
                        f"{_fmt(overfitting.get('checkpoint_train_loss'))} / "
                        f"{_fmt(overfitting.get('checkpoint_validation_loss'))}",
                    ),
                    (
                        "Best validation step and loss",
                        f"{_fmt(overfitting.get('best_validation_step'), 0)}, "
                        f"{_fmt(overfitting.get('best_validation_loss'))}",
                    ),
                    (
                        "Rise over the best / threshold (relative)",
                        f"{_fmt(overfitting.get('validation_rise_relative'))} / "
                        f"{_fmt(overfitting.get('rise_threshold_relative'))}",
                    ),
                    (
                        "Gap (validation − train) and ratio (evidence only)",
                        f"{_fmt(overfitting.get('gap'))}, "
                        f"ratio {_fmt(overfitting.get('gap_ratio'))}",
                    ),
                    (
                        "Evaluations after the best",
                        _fmt(overfitting.get("evaluations_after_best")),
                    ),
                ]
            )
        )
    reasons = [
        *_list(overfitting.get("reasons")),
        *_list(_dict(release.get("forgetting")).get("reasons")),
    ]
    if reasons:
        parts.append("<ul>" + "".join(f"<li>{_esc(r)}</li>" for r in reasons) + "</ul>")
    criteria = [c for c in _list(release.get("criteria")) if isinstance(c, dict)]
    if criteria:
        parts.append(
            _table(
                ["Criterion", "Result", "Evidence"],
                [
                    [
                        _esc(c.get("name"))
                        + ("" if c.get("required", True) else " (informational)"),
                        "pass" if c.get("passed") else "fail",
                        _esc(c.get("evidence")),
                    ]
                    for c in criteria
                ],
            )
        )
        parts.append(f"<p>Release verdict: <strong>{_esc(release.get('verdict'))}</strong></p>")
    return _section("release", "Release evidence", "".join(parts) or f"<p>{_na()}</p>")


_SECTIONS: tuple[tuple[str, str, Callable[[Mapping[str, Any]], str]], ...] = (
    ("win-rate", "Win rate", _win_rate),
    ("votes", "Votes", _votes),
    ("agreement", "Agreement", _agreement),
    ("raters", "Raters", _raters),
    ("judge", "Judge", _judge),
    ("metrics", "Metrics", _metrics),
    ("corpus-metrics", "Corpus metrics", _corpus_metrics),
    ("correlations", "Correlations", _correlations),
    ("advice", "Advice", _advice),
    ("disagreements", "Disagreements", _disagreements),
    ("decision", "Decision", _decision),
    ("identity", "Identity flags", _identity_flags),
    ("release", "Release", _release),
    ("settings", "Settings", _settings),
)


def _safe(anchor: str, title: str, build: Callable[[Mapping[str, Any]], str], report: Any) -> str:
    """One section; a section that cannot be built from malformed data says so and no more."""
    try:
        return build(report)
    except Exception:  # one malformed section must not cost the whole report
        logger.exception("report section %s failed", anchor)
        return _section(anchor, title, f"<p>{_na()}</p>")


def render_report_html(
    report: dict[str, Any], *, page_bar: str = "", scripts: Sequence[str] = ()
) -> str:
    """Render a study report (see :mod:`scoring.reports`) as one self-contained HTML document.

    Args:
        report: the report dict; every key is optional and may be null or empty.
        page_bar: for the web page only, trusted HTML (rendered by a Django template) put above
            the report: the way back to the study and the export buttons.
        scripts: for the web page only, same-origin script URLs the page loads (deferred).

    Returns:
        The HTML text, ready to write to a file: UTF-8, no external resources, and without
        `page_bar` and `scripts` no script either.
    """
    data: Mapping[str, Any] = report if isinstance(report, dict) else {}
    study = _dict(data.get("study"))
    name = study.get("name") or "Untitled study"
    slug = study.get("slug")
    title = f"{name} ({slug})" if slug else str(name)
    nav = "".join(f'<a href="#{anchor}">{_esc(label)}</a>' for anchor, label, _ in _SECTIONS)
    parts = [
        page_bar,
        _safe("header", "Study", _header, data),
        f"<nav>{nav}</nav>",
        _safe("verdict", "Verdict", _verdict, data),
        *(_safe(anchor, label, build, data) for anchor, label, build in _SECTIONS),
        _safe("footer", "Footer", _footer, data),
    ]
    is_page = bool(page_bar or scripts)
    css = _CSS + (_PAGE_CSS if is_page else "")
    script_tags = "".join(f'<script src="{_esc(url)}" defer></script>' for url in scripts)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_PAGE_CSP if is_page else _CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Evaluation report: {_esc(title)}</title><style>{css}</style>{script_tags}"
        f"</head><body><main>{''.join(parts)}</main></body></html>\n"
    )
