"""Money and token counts as people read them: `$12,345.67`, `$0.0123`, `$0.000011`, `1,234,567`.

CSV exports keep the raw decimals; these are for pages and charts only."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

SMALLEST = Decimal("0.000001")


def usd(value: Decimal | int | float | None) -> str:
    """Dollars with separators; cents from $1 up, 4 decimals from a cent, 6 below (never a float's
    18 digits); a non-zero amount too small to show says so instead of reading as zero."""
    if value is None:
        return "—"
    amount = Decimal(value)
    sign, magnitude = ("-" if amount < 0 else ""), abs(amount)
    if magnitude == 0:
        return "$0.00"
    if magnitude >= 1:
        places = Decimal("0.01")
    elif magnitude >= Decimal("0.01"):
        places = Decimal("0.0001")
    elif magnitude >= SMALLEST / 2:
        places = SMALLEST
    else:
        return f"{sign}<$0.000001"
    return f"{sign}${magnitude.quantize(places, rounding=ROUND_HALF_UP):,}"


def tokens(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def share(part: Decimal, whole: Decimal) -> str:
    """A part of a total as a percentage with one decimal ("—" when the total is zero)."""
    if not whole:
        return "—"
    return f"{(Decimal(part) * 100 / Decimal(whole)).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}%"


def usd_rate(value: Decimal) -> str:
    """A price as written on a price list: at least cents, never trailing zeros past them ($0.80,
    $0.075, $2.50)."""
    exact = Decimal(value).normalize()
    decimals = max(2, -int(exact.as_tuple().exponent))
    return f"${exact:,.{decimals}f}"
