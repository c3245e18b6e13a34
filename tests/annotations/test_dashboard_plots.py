"""The dashboard's SVG plots (`annotations.dashboard_plots`): inline SVG with their titles,
one bar per bucket with judgments and its exact count on hover, names escaped."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from annotations import dashboard_plots, pace

NOW = datetime(2025, 6, 10, 14, 25, tzinfo=UTC)


def hourly() -> list[pace.Bucket]:
    counts = {
        pace.floor_hour(NOW) - timedelta(hours=h): (h % 7, min(h % 2, h % 7)) for h in range(48)
    }
    return pace.hourly_buckets(counts, now=NOW)


def test_hourly_plot_draws_one_bar_per_busy_hour_with_its_count() -> None:
    buckets = hourly()

    svg = dashboard_plots.hourly_svg(buckets)

    assert svg.startswith('<svg class="plot" role="img"')
    assert svg.endswith("</svg>")
    assert 'aria-label="Judgments per hour, last 48 hours (UTC)"' in svg
    bars = re.findall(r"<g><title>([^<]*)</title>", svg)
    assert len(bars) == sum(1 for b in buckets if b.judgments)
    this_hour = pace.floor_hour(NOW)
    assert (
        f"{this_hour - timedelta(hours=1):%d %b} 13:00-14:00 UTC: 1 judgment (1 too fast)" in bars
    )
    assert f"{this_hour - timedelta(hours=6):%d %b} 08:00-09:00 UTC: 6 judgments" in bars
    # Flagged-fast judgments are stacked in their own colour.
    assert svg.count(f'fill="{dashboard_plots.COLOUR_FAST}"') == 1 + sum(
        1 for b in buckets if b.flagged_fast
    )


def test_daily_plot_and_an_empty_span() -> None:
    day = pace.floor_day(NOW)
    svg = dashboard_plots.daily_svg(pace.daily_buckets({day: (1_234, 3)}, now=NOW))
    assert "Judgments per day, whole study (1 day, UTC)" in svg
    assert "Tue 10 Jun 2025: 1,234 judgments (3 too fast)" in svg

    empty = dashboard_plots.hourly_svg(pace.hourly_buckets({}, now=NOW))
    assert "<g><title>" not in empty and empty.endswith("</svg>")


@pytest.mark.parametrize(
    ("peak", "axis"), [(0, (1, 1)), (1, (1, 1)), (7, (8, 2)), (1_389, (1_500, 500)), (42, (50, 10))]
)
def test_nice_axis(peak, axis) -> None:
    assert dashboard_plots.nice_axis(peak) == axis


def test_rater_grid_names_the_raters_escaped() -> None:
    starts = [b.start for b in hourly()]
    rows = [("ann", [0] * 47 + [9]), ('<b>&"bob', [1] + [0] * 47)]

    svg = dashboard_plots.rater_grid_svg(starts, rows)

    assert "darkest: 9 in an hour" in svg
    assert f"ann, {starts[-1]:%d %b} 14:00 UTC: 9 judgments" in svg
    assert "&lt;b&gt;&amp;&quot;bob" in svg and "<b>" not in svg
    assert svg.count('fill-opacity="') == 2  # only the hours with judgments are drawn
