"""The report's daily spend chart as inline SVG, drawn on the server (no JavaScript, no CDN)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from html import escape

WIDTH, HEIGHT = 760, 240
LEFT, RIGHT, TOP, BOTTOM = 72, 12, 16, 36


def _money(value: Decimal) -> str:
    return f"${value:,.4f}" if value < 100 else f"${value:,.2f}"


def daily_spend_svg(points: list[tuple[dt.date, Decimal]]) -> str:
    """One bar per day (height ∝ cost), a labelled maximum, the first and last dates; a <title> per bar."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = max((cost for _, cost in points), default=Decimal(0))
    slot = plot_w / max(len(points), 1)
    bar_w = max(slot * 0.8, 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="usage-chart" role="img" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" aria-label="Daily spend in USD">',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" stroke="#999"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#999"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end" font-size="11">{escape(_money(top))}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end" font-size="11">$0</text>',
    ]
    for index, (day, cost) in enumerate(points):
        height = float(cost / top) * plot_h if top > 0 else 0.0
        x = LEFT + index * slot + (slot - bar_w) / 2
        parts.append(
            f'<rect class="usage-bar" data-day="{day.isoformat()}" data-cost="{cost}" x="{x:.2f}" '
            f'y="{TOP + plot_h - height:.2f}" width="{bar_w:.2f}" height="{height:.2f}" fill="#417690">'
            f"<title>{escape(day.isoformat())}: {escape(_money(cost))}</title></rect>"
        )
    if points:
        first, last = points[0][0].isoformat(), points[-1][0].isoformat()
        baseline = TOP + plot_h + 16
        parts.append(f'<text x="{LEFT}" y="{baseline}" font-size="11">{escape(first)}</text>')
        parts.append(
            f'<text x="{WIDTH - RIGHT}" y="{baseline}" text-anchor="end" font-size="11">{escape(last)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
