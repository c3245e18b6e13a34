"""The study dashboard's plots as inline SVG, written directly. Pure: no Django, no state; the
inputs are `annotations.pace` buckets and plain tuples.

Why not matplotlib: a figure costs it 75-90 ms of CPU however few its bars (text layout,
artists, the SVG backend), so the page's three would take ~270 ms of the one-second budget on
every poll; these few rectangles and labels take about a millisecond. Every bar and cell
carries a `<title>`, so hovering it shows its exact count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from html import escape

from annotations.pace import Bucket

COLOUR_OK = "#2b6cb0"
COLOUR_FAST = "#dd6b20"
COLOUR_GRID = "#e2e8f0"
COLOUR_TEXT = "#4a5568"
COLOUR_EMPTY = "#f1f3f6"
WIDTH = 720
MAX_BAR_SLOT = 40.0
FONT = 'font-family="system-ui, sans-serif" font-size="11"'
# Raters drawn in the activity grid; the table beside it lists every rater.
MAX_GRID_RATERS = 40
NAME_CHARACTERS = 18


def _number(value: float) -> str:
    """Coordinates with at most two decimals, so the markup stays small and stable."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _svg(label: str, height: float, body: list[str]) -> str:
    return (
        f'<svg class="plot" role="img" aria-label="{escape(label)}" '
        f'viewBox="0 0 {WIDTH} {_number(height)}" xmlns="http://www.w3.org/2000/svg" {FONT}>'
        + "".join(body)
        + "</svg>"
    )


def _title(x: float, text: str) -> str:
    return f'<text x="{_number(x)}" y="14" font-size="12" fill="#1b1f24">{escape(text)}</text>'


def nice_axis(peak: int, most_ticks: int = 5) -> tuple[int, int]:
    """(top, step) of a y axis from 0 that holds `peak`: the step a 1, 2 or 5 times a power of
    ten, at most `most_ticks` steps."""
    if peak <= 0:
        return 1, 1
    raw = peak / most_ticks
    power = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    step = max(1, int(step))
    return step * math.ceil(peak / step), step


def _bars(
    label: str,
    buckets: Sequence[Bucket],
    describe: Callable[[Bucket], str],
    tick_format: str,
) -> str:
    """Bars of judgments per bucket, flagged-too-fast ones stacked on top in their colour."""
    left, right, top, bottom = 46.0, 8.0, 24.0, 22.0
    height = 200.0
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    peak, step = nice_axis(max((b.judgments for b in buckets), default=0))
    scale = plot_h / peak
    # A few buckets (a study's first days) get bars of a sensible width, not the whole axis.
    slot = min(plot_w / max(1, len(buckets)), MAX_BAR_SLOT)
    gap = min(1.0, slot * 0.15)
    body = [_title(left, label)]
    # Legend, top right.
    legend_x = WIDTH - right - 220
    for offset, colour, text in ((0, COLOUR_OK, "judgments"), (90, COLOUR_FAST, "too fast")):
        body.append(
            f'<rect x="{_number(legend_x + offset)}" y="5" width="10" height="10" '
            f'fill="{colour}"/><text x="{_number(legend_x + offset + 14)}" y="14" '
            f'fill="{COLOUR_TEXT}">{text}</text>'
        )
    for value in range(0, peak + 1, step):
        y = top + plot_h - value * scale
        body.append(
            f'<line x1="{_number(left)}" x2="{_number(WIDTH - right)}" y1="{_number(y)}" '
            f'y2="{_number(y)}" stroke="{COLOUR_GRID}"/><text x="{_number(left - 4)}" '
            f'y="{_number(y + 4)}" text-anchor="end" fill="{COLOUR_TEXT}">{value:,}</text>'
        )
    for k, bucket in enumerate(buckets):
        if not bucket.judgments:
            continue
        x = left + k * slot + gap / 2
        ok = bucket.judgments - bucket.flagged_fast
        base = top + plot_h
        rects = []
        for count, colour in ((ok, COLOUR_OK), (bucket.flagged_fast, COLOUR_FAST)):
            if count:
                h = count * scale
                base -= h
                rects.append(
                    f'<rect x="{_number(x)}" y="{_number(base)}" width="{_number(slot - gap)}" '
                    f'height="{_number(h)}" fill="{colour}"/>'
                )
        body.append(f"<g><title>{escape(describe(bucket))}</title>{''.join(rects)}</g>")
    every = max(1, math.ceil(len(buckets) / 8))
    for k in range(0, len(buckets), every):
        x = left + k * slot
        body.append(
            f'<line x1="{_number(x)}" x2="{_number(x)}" y1="{_number(top + plot_h)}" '
            f'y2="{_number(top + plot_h + 4)}" stroke="{COLOUR_TEXT}"/>'
            f'<text x="{_number(x)}" y="{_number(height - 6)}" fill="{COLOUR_TEXT}">'
            f"{escape(buckets[k].start.strftime(tick_format))}</text>"
        )
    body.append(
        f'<line x1="{_number(left)}" x2="{_number(WIDTH - right)}" y1="{_number(top + plot_h)}" '
        f'y2="{_number(top + plot_h)}" stroke="{COLOUR_TEXT}"/>'
    )
    return _svg(label, height, body)


def _count_text(bucket: Bucket) -> str:
    fast = f" ({bucket.flagged_fast:,} too fast)" if bucket.flagged_fast else ""
    return f"{bucket.judgments:,} judgment{'s' if bucket.judgments != 1 else ''}{fast}"


def hourly_svg(buckets: Sequence[Bucket]) -> str:
    """Judgments per hour (flagged-fast ones stacked on top), one bar per bucket."""
    return _bars(
        f"Judgments per hour, last {len(buckets)} hours (UTC)",
        buckets,
        lambda b: f"{b.start:%d %b %H:00}-{(b.start.hour + 1) % 24:02d}:00 UTC: {_count_text(b)}",
        "%d %b %H:00",
    )


def daily_svg(buckets: Sequence[Bucket]) -> str:
    """Judgments per day over the study's life."""
    days = f"{len(buckets)} day{'s' if len(buckets) != 1 else ''}"
    return _bars(
        f"Judgments per day, whole study ({days}, UTC)",
        buckets,
        lambda b: f"{b.start:%a %d %b %Y}: {_count_text(b)}",
        "%d %b",
    )


def _short(name: str) -> str:
    return name if len(name) <= NAME_CHARACTERS else name[: NAME_CHARACTERS - 1] + "…"


def rater_grid_svg(
    hour_starts: Sequence[datetime], rows: Sequence[tuple[str, Sequence[int]]]
) -> str:
    """A grid of judgments per rater (rows) and hour (columns), darker for more: who is rating
    now, who paused. The first `MAX_GRID_RATERS` rows are drawn, in the order given."""
    rows = list(rows)[:MAX_GRID_RATERS]
    darkest = max((max(counts, default=0) for _, counts in rows), default=0)
    label = (
        f"Judgments per rater and hour, last {len(hour_starts)} hours (UTC; "
        f"darkest: {darkest:,} in an hour)"
    )
    left, right, top, row_h = 130.0, 8.0, 24.0, 16.0
    height = top + row_h * len(rows) + 22
    cell_w = (WIDTH - left - right) / max(1, len(hour_starts))
    body = [_title(8, label)]
    for r, (name, counts) in enumerate(rows):
        y = top + r * row_h
        body.append(
            f'<text x="{_number(left - 6)}" y="{_number(y + row_h - 4)}" text-anchor="end" '
            f'fill="{COLOUR_TEXT}"><title>{escape(name)}</title>{escape(_short(name))}</text>'
            f'<rect x="{_number(left)}" y="{_number(y + 1)}" '
            f'width="{_number(WIDTH - left - right)}" height="{_number(row_h - 2)}" '
            f'fill="{COLOUR_EMPTY}"/>'
        )
        for k, count in enumerate(counts):
            if not count:
                continue
            opacity = 0.2 + 0.8 * count / darkest
            body.append(
                f'<rect x="{_number(left + k * cell_w)}" y="{_number(y + 1)}" '
                f'width="{_number(cell_w)}" height="{_number(row_h - 2)}" fill="{COLOUR_OK}" '
                f'fill-opacity="{opacity:.2f}"><title>{escape(name)}, '
                f"{hour_starts[k]:%d %b %H:00} UTC: {count:,} judgment{'s' if count != 1 else ''}"
                "</title></rect>"
            )
    # Fewer labels than the bar plots: the names' column takes part of the width.
    every = max(1, math.ceil(len(hour_starts) / 6))
    for k in range(0, len(hour_starts), every):
        body.append(
            f'<text x="{_number(left + k * cell_w)}" y="{_number(height - 6)}" '
            f'fill="{COLOUR_TEXT}">{hour_starts[k]:%d %b %H:00}</text>'
        )
    return _svg(label, height, body)
