"""Template filters for money and token counts (usage/money.py): `{{ cost|usd }}`, `{{ n|tokens }}`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import template

from usage import money

register = template.Library()


@register.filter
def usd(value: Any) -> str:
    return money.usd(None if value in (None, "") else Decimal(str(value)))


@register.filter
def tokens(value: Any) -> str:
    return money.tokens(None if value in (None, "") else int(value))


@register.filter
def share_of(value: Any, whole: Any) -> str:
    return money.share(Decimal(str(value or 0)), Decimal(str(whole or 0)))
