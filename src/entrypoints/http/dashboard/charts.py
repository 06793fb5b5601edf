"""Small bar charts as inline SVG, drawn on the server: no script, no library. Every text
in them goes through markupsafe.escape."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH = 360
HEIGHT = 110
PLOT_TOP = 18
PLOT_BOTTOM = 92


def bar_chart(title: str, counts: Sequence[int], window_minutes: int) -> Markup:
    """One bar per step (a minute), oldest on the left; labelled with the peak and the
    window's total so the numbers read without hovering."""
    peak = max(counts, default=0)
    total = sum(counts)
    scale = (PLOT_BOTTOM - PLOT_TOP) / max(peak, 1)
    step = WIDTH / max(len(counts), 1)
    bars = []
    for index, count in enumerate(counts):
        height = round(count * scale, 2)
        if count and height < 1:
            height = 1.0
        x = round(index * step + 0.5, 2)
        bars.append(
            f'<rect x="{x}" y="{round(PLOT_BOTTOM - height, 2)}" width="{round(step - 1, 2)}" '
            f'height="{height}"><title>{count}</title></rect>'
        )
    label = escape(title)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
        f'height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg" '
        f'aria-label="{label}: {total} in the last {window_minutes} minutes">',
        f'<text x="0" y="12" class="chart-title">{label}</text>',
        f'<text x="{WIDTH}" y="12" text-anchor="end" class="chart-figure">'
        f"{total} total · peak {peak}/min</text>",
        f'<line x1="0" y1="{PLOT_BOTTOM}" x2="{WIDTH}" y2="{PLOT_BOTTOM}" class="axis"/>',
        '<g class="bars">',
        *bars,
        "</g>",
        f'<text x="0" y="{HEIGHT - 4}" class="chart-axis">−{window_minutes} min</text>',
        f'<text x="{WIDTH}" y="{HEIGHT - 4}" text-anchor="end" class="chart-axis">now</text>',
        "</svg>",
    ]
    return Markup("".join(parts))
