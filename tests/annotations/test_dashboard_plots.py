"""The dashboard's SVG plots (`annotations.dashboard_plots`): inline SVG, deterministic, the
text kept as text, ids distinct between plots, memoised on their inputs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from annotations import dashboard_plots, pace

NOW = datetime(2025, 6, 10, 14, 25, tzinfo=UTC)


def hourly() -> tuple[pace.Bucket, ...]:
    counts = {pace.floor_hour(NOW) - timedelta(hours=h): (h % 7, h % 2) for h in range(48)}
    return tuple(pace.hourly_buckets(counts, now=NOW))


def test_hourly_and_daily_plots_are_inline_svg_with_their_titles() -> None:
    svg = dashboard_plots.hourly_svg(hourly())
    daily = dashboard_plots.daily_svg(
        tuple(pace.daily_buckets({pace.floor_day(NOW): (40, 3)}, now=NOW))
    )

    assert svg.startswith('<svg class="plot" role="img"')
    assert svg.rstrip().endswith("</svg>")
    assert "Judgments per hour, last 48 hours (UTC)" in svg
    assert "flagged too fast" in svg
    assert "Judgments per day, whole study (1 days, UTC)" in daily
    assert "<metadata>" not in svg
    # Ids are prefixed by the plot's name, so two plots on one page never share one.
    ids = set(re.findall(r'\bid="([^"]+)"', svg)) | set(re.findall(r'\bid="([^"]+)"', daily))
    assert ids and all(i.startswith(("hourly-", "daily-")) for i in ids)


def test_plots_are_deterministic_and_memoised() -> None:
    first = dashboard_plots.hourly_svg(hourly())
    dashboard_plots.hourly_svg.cache_clear()
    assert dashboard_plots.hourly_svg(hourly()) == first
    hits = dashboard_plots.hourly_svg.cache_info().hits
    dashboard_plots.hourly_svg(hourly())
    assert dashboard_plots.hourly_svg.cache_info().hits == hits + 1


def test_rater_grid_names_the_raters_escaped() -> None:
    starts = tuple(b.start for b in hourly())
    rows = (("ann", tuple(range(48))), ("<b>&bob$", (0,) * 47 + (9,)))

    svg = dashboard_plots.rater_grid_svg(starts, rows)

    assert "Judgments per rater and hour, last 48 hours (UTC; darkest: 47 in an hour)" in svg
    assert ">ann<" in svg
    assert "&lt;b&gt;&amp;bob$" in svg and "<b>" not in svg
