"""What the admin usage report shows, computed once for the page and for its CSV (the same rows)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from usage.charts import bucket_label, bucket_of, buckets_build, spend_chart_svg
from usage.money import share
from usage.selectors import (
    usage_report,
    usage_spend_by_day,
    usage_stale_days,
    usage_top_groups,
    usage_totals,
)
from usage.types import GroupBy, UsageFilter, UsageGroup, UsageReport, UsageTotals

REPORT_GROUPS_SHOWN = 500
TOP_ROWS = 10
TOP_TABLES: tuple[tuple[GroupBy, str], ...] = (("key", "Top keys"), ("session_id", "Top sessions"),
                                               ("model", "Top models"))  # fmt: skip
# Sessions are the one high-cardinality grouping (50,000 at 1M events: the top ten alone took as
# long as the rest of the page): unless the page groups by session, the browser fetches that
# table on its own, and the page shows without waiting for it.
DEFERRED_TOPS: tuple[GroupBy, ...] = ("session_id",)
CSV_COLUMNS = ["group", "requests", "errors", "prompt_tokens", "completion_tokens", "cached_tokens",
               "cost_usd", "share_of_cost"]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Row:
    """One table row: its label, its totals and its share of the whole range's cost."""

    label: str
    totals: UsageTotals
    share: str


@dataclass(frozen=True, slots=True)
class Table:
    title: str
    group_by: str
    rows: list[Row]
    # None where not counted (sessions: a count reads every session of the range); `more` then
    # says whether groups past these exist.
    group_count: int | None
    more: bool = False
    # Not computed with the page: the browser fetches it on its own (report_top_table).
    deferred: bool = False


@dataclass(frozen=True, slots=True)
class ReportPage:
    usage_filter: UsageFilter
    bucket: str
    totals: UsageTotals
    main: Table
    tops: list[Table]
    chart_svg: str
    stale_slices: int


def _label(group_by: str, group: UsageGroup) -> str:
    if group_by == "tenant" and group.tenant_name:
        return group.tenant_name
    if group_by == "key" and group.key_prefix:
        return f"{group.key_prefix}… {group.key_name or ''}".strip()
    return group.value or "(none)"


def _rows(group_by: str, groups: list[UsageGroup], whole: Decimal) -> list[Row]:
    return [Row(_label(group_by, g), g.totals, share(g.totals.cost_usd, whole)) for g in groups]


def _add(a: UsageTotals, b: UsageTotals) -> UsageTotals:
    return UsageTotals(*(getattr(a, f) + getattr(b, f) for f in UsageTotals.__dataclass_fields__))


def _periods(groups: list[UsageGroup], bucket: str) -> list[tuple[str, UsageTotals]]:
    """Day groups summed into weeks or months for long ranges (bounded rows whatever the range)."""
    summed: dict[dt.date, UsageTotals] = {}
    for group in groups:
        start = bucket_of(dt.date.fromisoformat(group.value), bucket)
        summed[start] = _add(summed.get(start, UsageTotals()), group.totals)
    labels = {"day": "%Y-%m-%d", "week": "week of %Y-%m-%d", "month": "%Y-%m"}
    return [(start.strftime(labels[bucket]), totals) for start, totals in sorted(summed.items())]


def report_top_table(*, usage_filter: UsageFilter, top_by: GroupBy, whole: Decimal | None = None) -> Table:
    """One top table, shares of `whole` (the range's cost; read from the session-free rollups when
    not given). A top ten needs no totals nor a count of every group (usage_top_groups)."""
    if whole is None:
        whole = usage_totals(usage_filter=usage_filter).cost_usd
    groups = usage_top_groups(usage_filter=usage_filter, group_by=top_by, limit=TOP_ROWS)
    return Table(dict(TOP_TABLES)[top_by], top_by, _rows(top_by, groups, whole), len(groups))


def _main_report(usage_filter: UsageFilter, group_by: GroupBy) -> tuple[UsageReport, bool]:
    """The main table's groups and the range's totals, and whether groups past them exist. By
    session: the largest sessions and one more (usage_top_groups reads them without every session
    of the range), the totals from the session-free rollups, and no count (it reads every session):
    the page says "more sessions" instead of a count."""
    if group_by != "session_id":
        report = usage_report(usage_filter=usage_filter, group_by=group_by, limit=REPORT_GROUPS_SHOWN)
        return report, report.group_count > len(report.groups)
    groups = usage_top_groups(usage_filter=usage_filter, group_by=group_by, limit=REPORT_GROUPS_SHOWN + 1)
    totals = usage_totals(usage_filter=usage_filter)
    shown = groups[:REPORT_GROUPS_SHOWN]
    return UsageReport(usage_filter, group_by, totals, shown, len(shown)), len(groups) > len(shown)


def report_page_build(
    *, usage_filter: UsageFilter, group_by: GroupBy, stack_by: GroupBy, bucket: str
) -> ReportPage:
    main_report, more = _main_report(usage_filter, group_by)
    counted = None if group_by == "session_id" else main_report.group_count
    whole = main_report.totals.cost_usd
    if group_by == "day":
        periods = _periods(main_report.groups, bucket)
        rows = [Row(label, totals, share(totals.cost_usd, whole)) for label, totals in periods]
        main = Table(f"By {bucket}", bucket, rows, len(rows))
    else:
        main = Table(f"By {group_by.replace('_', ' ')}", group_by,
                     _rows(group_by, main_report.groups, whole), counted, more)  # fmt: skip
    tops = []
    for top_by, title in TOP_TABLES:
        if top_by == group_by:  # the main table already holds these, largest first
            groups = main_report.groups[:TOP_ROWS]
            tops.append(Table(title, top_by, _rows(top_by, groups, whole), counted, more))
        elif top_by in DEFERRED_TOPS:
            tops.append(Table(title, top_by, [], 0, deferred=True))
        else:
            tops.append(report_top_table(usage_filter=usage_filter, top_by=top_by, whole=whole))
    points = usage_spend_by_day(usage_filter=usage_filter, series=stack_by)
    buckets, series = buckets_build(points, usage_filter.date_from, usage_filter.date_to, bucket)
    title = f"Spend per {bucket} by {stack_by}, {bucket_label(usage_filter.date_from, 'day')} – " \
            f"{bucket_label(usage_filter.date_to, 'day')}"  # fmt: skip
    return ReportPage(
        usage_filter=usage_filter,
        bucket=bucket,
        totals=main_report.totals,
        main=main,
        tops=tops,
        chart_svg=spend_chart_svg(buckets, series, title=title),
        stale_slices=usage_stale_days(usage_filter=usage_filter),
    )


def report_page_csv(page: ReportPage) -> Iterator[bytes]:
    """The main table exactly as shown, with raw decimals (no rounding, no separators), then the total."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([page.main.group_by, *CSV_COLUMNS[1:]])
    for row in [*page.main.rows, Row("TOTAL", page.totals, "100.0%" if page.totals.cost_usd else "—")]:
        t = row.totals
        counts = [t.requests, t.errors, t.prompt_tokens, t.completion_tokens, t.cached_tokens]
        writer.writerow([row.label, *counts, format(t.cost_usd, "f"), row.share])
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
