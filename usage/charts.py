"""The report's spend chart as inline SVG drawn on the server (no JavaScript, no CDN): one bar per
period (day, week or month), stacked by tenant or model, with round-number axis ticks."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal
from html import escape

from usage.money import usd

WIDTH, HEIGHT = 960, 280
LEFT, RIGHT, TOP, BOTTOM = 84, 16, 16, 40
MAX_SERIES = 8
OTHER = "Other"
# Colour-blind-safe (Okabe–Ito) first, then greys for "Other".
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
OTHER_COLOUR = "#9E9E9E"


@dataclass(frozen=True, slots=True)
class Bucket:
    """A period on the x axis: its first day, its label, and cost per series."""

    start: dt.date
    label: str
    costs: dict[str, Decimal]

    @property
    def total(self) -> Decimal:
        return sum(self.costs.values(), Decimal(0))


def bucket_of(day: dt.date, size: str) -> dt.date:
    if size == "week":
        return day - dt.timedelta(days=day.weekday())
    if size == "month":
        return day.replace(day=1)
    return day


def bucket_label(start: dt.date, size: str) -> str:
    if size == "month":
        return start.strftime("%b %Y")
    if size == "week":
        return f"wk {start:%d %b}"
    return start.strftime("%d %b")


def bucket_starts(date_from: dt.date, date_to: dt.date, size: str) -> list[dt.date]:
    starts: list[dt.date] = []
    day = date_from
    while day <= date_to:
        start = bucket_of(day, size)
        if not starts or starts[-1] != start:
            starts.append(start)
        day += dt.timedelta(days=1)
    return starts


def buckets_build(
    points: list[tuple[dt.date, str, Decimal]], date_from: dt.date, date_to: dt.date, size: str
) -> tuple[list[Bucket], list[str]]:
    """Buckets over the whole range (empty periods included) and the series shown, largest first:
    past MAX_SERIES - 1 the smaller ones are summed as "Other"."""
    by_series: dict[str, Decimal] = {}
    for _, series, cost in points:
        by_series[series] = by_series.get(series, Decimal(0)) + cost
    ranked = sorted(by_series, key=lambda name: (-by_series[name], name))
    shown = ranked if len(ranked) <= MAX_SERIES else [*ranked[: MAX_SERIES - 1], OTHER]
    kept = set(shown)
    costs: dict[dt.date, dict[str, Decimal]] = {
        start: {} for start in bucket_starts(date_from, date_to, size)
    }
    for day, series, cost in points:
        name = series if series in kept else OTHER
        slot = costs.setdefault(bucket_of(day, size), {})
        slot[name] = slot.get(name, Decimal(0)) + cost
    buckets = [Bucket(start, bucket_label(start, size), costs[start]) for start in sorted(costs)]
    return buckets, shown


def nice_ticks(top: Decimal, count: int = 4) -> list[Decimal]:
    """0 and `count` round steps (1, 2, 2.5 or 5 × 10^n) whose last is at least `top`."""
    if top <= 0:
        return [Decimal(0), Decimal(1)]
    raw = top / count
    magnitude = Decimal(10) ** raw.adjusted()
    step = next(m * magnitude for m in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10))
                if m * magnitude >= raw)  # fmt: skip
    return [step * n for n in range(count + 1)]


def tick_label(value: Decimal, step: Decimal) -> str:
    """Every tick of an axis at the precision its step needs ($0.50 / $1.00, $0.00001 / $0.00002)."""
    if value == 0:
        return "$0"
    exponent = int(step.normalize().as_tuple().exponent)
    decimals = 0 if exponent >= 0 else max(2, -exponent)
    return f"${value:,.{decimals}f}"


def _label_every(slot_width: float) -> int:
    """Label one bar in N so the labels (about 60 px each) never overlap."""
    return max(1, math.ceil(60 / max(slot_width, 1.0)))


def spend_chart_svg(buckets: list[Bucket], series: list[str], *, title: str) -> str:
    """Stacked bars (one <rect> per bucket and series, with a <title> tooltip), y ticks in dollars."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    ticks = nice_ticks(max((b.total for b in buckets), default=Decimal(0)))
    ceiling, step = ticks[-1], ticks[1] - ticks[0]
    slot = plot_w / max(len(buckets), 1)
    bar_w = min(max(slot * 0.75, 1.0), 56.0)  # a single day is a bar, not a wall
    colours = {
        name: (OTHER_COLOUR if name == OTHER else PALETTE[i % len(PALETTE)]) for i, name in enumerate(series)
    }
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="usage-chart" role="img" width="100%" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" aria-label="{escape(title)}" font-family="sans-serif">',
    ]
    for tick in ticks:
        y = TOP + plot_h - float(tick / ceiling) * plot_h
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#e3e3e3"/>')
        parts.append(
            f'<text class="usage-tick" x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end" font-size="12" '
            f'fill="#555">{escape(tick_label(tick, step))}</text>'
        )
    every = _label_every(slot)
    for index, bucket in enumerate(buckets):
        x = LEFT + index * slot + (slot - bar_w) / 2
        y = TOP + plot_h
        for name in series:
            cost = bucket.costs.get(name, Decimal(0))
            height = float(cost / ceiling) * plot_h
            if cost <= 0:
                continue
            y -= height
            parts.append(
                f'<rect class="usage-bar" data-period="{bucket.start.isoformat()}" '
                f'data-series="{escape(name)}" data-cost="{cost}" x="{x:.2f}" y="{y:.2f}" '
                f'width="{bar_w:.2f}" height="{height:.2f}" '
                f'fill="{colours[name]}"><title>{escape(bucket.label)} · {escape(name)}: {escape(usd(cost))}'
                f"</title></rect>"
            )
        if index % every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{TOP + plot_h + 18}" text-anchor="middle" font-size="12" '
                f'fill="#555">{escape(bucket.label)}</text>'
            )
    parts.append(
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" stroke="#999"/>'
    )
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch" style="background:{colours[name]}"></span>{escape(name)}</li>'
        for name in series
    )
    return "".join(parts) + (f'<ul class="usage-legend">{legend}</ul>' if series else "")
