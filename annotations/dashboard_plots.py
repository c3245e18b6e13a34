"""The study dashboard's plots as inline SVG, drawn by matplotlib on the server. Pure: no
Django; the inputs are `annotations.pace` buckets and plain tuples.

`matplotlib.figure.Figure` is used directly (never pyplot, whose global figure registry is not
thread-safe). The SVG settings (text kept as text, a fixed id salt per plot) are rcParams,
which are process-global, so drawing happens under one lock. The page polls every few
seconds and the figures rarely change between polls, so each drawing is memoised on its
inputs.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING

from annotations.pace import Bucket

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLOUR_OK = "#2b6cb0"
COLOUR_FAST = "#dd6b20"
COLOUR_GRID = "#e2e8f0"
_PLOT_RC = {
    "svg.fonttype": "none",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_SVG_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}
_SVG_ID_REF = re.compile(r'(\bid="|href="#|url\(#)([^")]+)')
_DRAWING = threading.Lock()
# Raters drawn in the activity grid; the table below it lists every rater.
MAX_GRID_RATERS = 40


def _finish(name: str, label: str, fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata=_SVG_METADATA)
    svg = buffer.getvalue()
    svg = svg[svg.find("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.DOTALL)
    svg = svg.replace("<svg ", f'<svg class="plot" role="img" aria-label="{label}" ', 1)
    # Ids unique across the several SVGs inlined into one page.
    ids = set(re.findall(r'\bid="([^"]+)"', svg))
    return _SVG_ID_REF.sub(
        lambda m: m.group(1) + (f"{name}-{m.group(2)}" if m.group(2) in ids else m.group(2)), svg
    )


@contextmanager
def _drawing(name: str, size: tuple[float, float], margins: dict[str, float]) -> Iterator[Figure]:
    """A fresh figure with the plots' settings, under the drawing lock. Fixed margins, not a
    layout engine: measuring every label for a layout is most of matplotlib's time."""
    import matplotlib as mpl  # imported on first use: importing this module stays cheap
    from matplotlib.figure import Figure

    with _DRAWING, mpl.rc_context({**_PLOT_RC, "svg.hashsalt": f"dashboard-{name}"}):
        figure = Figure(figsize=size)
        figure.subplots_adjust(**margins)
        yield figure


def _ticks(starts: tuple[datetime, ...], date_format: str, most: int = 8) -> tuple[list, list]:
    step = max(1, -(-len(starts) // most))
    positions = list(range(0, len(starts), step))
    return positions, [starts[k].strftime(date_format) for k in positions]


def _stacked_bars_svg(name: str, title: str, buckets: tuple[Bucket, ...], date_format: str) -> str:
    """One bar per bucket, flagged-fast judgments stacked on top: drawn as two filled step
    outlines (two shapes, not two per bar)."""
    import numpy as np

    ok = np.array([b.judgments - b.flagged_fast for b in buckets], dtype=float)
    everything = np.array([b.judgments for b in buckets], dtype=float)
    edges = np.arange(len(buckets) + 1)
    margins = {"left": 0.08, "right": 0.99, "bottom": 0.14, "top": 0.87}
    with _drawing(name, (7.0, 2.4), margins) as fig:
        ax = fig.add_subplot()
        ax.stairs(ok, edges, fill=True, color=COLOUR_OK, label="judgments")
        ax.stairs(
            everything, edges, baseline=ok, fill=True, color=COLOUR_FAST, label="flagged too fast"
        )
        ax.set_xlim(0, len(buckets))
        ax.set_ylim(0, max(1.0, float(everything.max(initial=0.0))) * 1.15)
        ax.set_xticks(*_ticks(tuple(b.start for b in buckets), date_format))
        ax.grid(True, axis="y", color=COLOUR_GRID, linewidth=0.6)
        ax.set_axisbelow(True)
        ax.legend(frameon=False, loc="upper left", fontsize=7, ncols=2)
        ax.set_title(title, loc="left")
        ax.set_ylabel("judgments")
        return _finish(name, title, fig)


@lru_cache(maxsize=32)
def hourly_svg(buckets: tuple[Bucket, ...]) -> str:
    """Judgments per hour (flagged-fast ones stacked on top), one bar per bucket."""
    title = f"Judgments per hour, last {len(buckets)} hours (UTC)"
    return _stacked_bars_svg("hourly", title, buckets, "%d %b %H:00")


@lru_cache(maxsize=32)
def daily_svg(buckets: tuple[Bucket, ...]) -> str:
    """Judgments per day over the study's life."""
    title = f"Judgments per day, whole study ({len(buckets)} days, UTC)"
    return _stacked_bars_svg("daily", title, buckets, "%d %b")


@lru_cache(maxsize=32)
def rater_grid_svg(
    hour_starts: tuple[datetime, ...], rows: tuple[tuple[str, tuple[int, ...]], ...]
) -> str:
    """A grid of judgments per rater (rows) and hour (columns): who is rating now, who paused.
    The first `MAX_GRID_RATERS` rows are drawn, in the order given."""
    import numpy as np

    rows = rows[:MAX_GRID_RATERS]
    counts = np.array([row for _, row in rows], dtype=float).reshape(len(rows), len(hour_starts))
    darkest = int(counts.max(initial=0.0))
    title = (
        f"Judgments per rater and hour, last {len(hour_starts)} hours (UTC; "
        f"darkest: {darkest} in an hour)"
    )
    height = 0.9 + 0.2 * max(1, len(rows))
    margins = {"left": 0.17, "right": 0.99, "bottom": 0.5 / height, "top": 1 - 0.3 / height}
    with _drawing("raters", (7.0, height), margins) as fig:
        ax = fig.add_subplot()
        ax.imshow(
            np.where(counts > 0, counts, np.nan),
            aspect="auto",
            cmap="Blues",
            interpolation="nearest",
            vmin=0,
            vmax=max(1, darkest),
        )
        ax.set_facecolor("#f7f8fa")
        ax.set_yticks(range(len(rows)), [name.replace("$", r"\$") for name, _ in rows])
        positions, labels = _ticks(hour_starts, "%d %b %H:00")
        ax.set_xticks([p - 0.5 for p in positions], labels)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(title, loc="left")
        return _finish("raters", title, fig)
