"""The usage ledger: one event per request, the daily rollups reports read, and stale rollup slices."""

from __future__ import annotations

from django.db import models

from keys.models import ApiKey, Tenant


class UsageEvent(models.Model):
    """One authenticated request, whatever its outcome; written once per `request_id`.

    On PostgreSQL the table is partitioned by month of `created_at` (usage.partitions), and a
    unique constraint there must include the partition key: uniqueness is (request_id,
    created_at). That is still one row per request because `created_at` is the request's start,
    fixed once per request id and carried by every entry written for it (the in-flight note,
    a stream's provisional entries, the final one, a job's re-run after a take-over: see
    usage.ledger.LedgerEntry). The database's primary key is (id, created_at) for the same
    reason; `id` alone stays unique (one identity sequence), which is what Django relies on.
    """

    # No index of its own: the unique (request_id, created_at) index serves lookups by request_id.
    request_id = models.CharField(max_length=40)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    api_key = models.ForeignKey(ApiKey, on_delete=models.PROTECT, related_name="+")
    session_id = models.CharField(max_length=256, blank=True, default="")
    template_id = models.CharField(max_length=64, blank=True, default="")
    template_version = models.PositiveIntegerField(null=True, blank=True)
    model_requested = models.CharField(max_length=200, blank=True, default="")
    model_served = models.CharField(max_length=200, blank=True, default="")
    provider = models.CharField(max_length=20, blank=True, default="")
    attempts = models.JSONField(default=list, blank=True, help_text="Every upstream try, fallbacks included.")
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    tokens_estimated = models.BooleanField(
        default=False,
        help_text="The stream was cut off before the upstream reported usage: tokens estimated.",
    )
    cost_usd = models.DecimalField(
        max_digits=18, decimal_places=9, default=0, help_text="At the catalog prices of the request's time."
    )
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time to first token (streams).")
    http_status = models.PositiveSmallIntegerField()
    error_code = models.CharField(max_length=40, blank=True, default="")
    streamed = models.BooleanField(default=False)
    cancelled = models.BooleanField(default=False, help_text="The client went away before the answer ended.")
    provisional = models.BooleanField(
        default=False,
        db_default=False,
        help_text="A stream's opening entry (prompt estimate): replaced by the final entry when the stream "
        "ends; it stays only when the gateway process died mid-stream.",
    )
    sanitized = models.BooleanField(
        default=False,
        db_default=False,
        help_text="A text value could not be stored as sent (a NUL character): stored escaped as \\u0000.",
    )
    comparison_id = models.CharField(
        max_length=40,
        blank=True,
        default="",
        db_default="",
        db_index=True,
        help_text="The comparison (POST /v1/compare) this request was one model's run of.",
    )
    endpoint = models.CharField(
        max_length=32,
        default="chat.completions",
        db_default="chat.completions",
        help_text="The API called: chat.completions, embeddings, images.generations…",
    )
    images = models.PositiveIntegerField(
        default=0, db_default=0, help_text="Images generated (image requests)."
    )
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # The flusher's ON CONFLICT target: a duplicate delivery of an entry stores nothing.
            models.UniqueConstraint(fields=["request_id", "created_at"], name="usage_event_request_unique"),
        ]
        indexes = [
            # Rollup recompute and tenant-scoped listings: one tenant's events in a time range.
            models.Index(fields=["tenant", "created_at"]),
            # Session detail within a tenant (the API's session filter, tenant admins).
            models.Index(fields=["tenant", "session_id", "created_at"]),
            # Finance's admin search by session id across tenants.
            models.Index(fields=["session_id"], name="usage_event_session_idx"),
        ]
        permissions = [("view_all_tenants_usage", "Can view the usage of every tenant")]

    def __str__(self) -> str:
        return self.request_id


class RollupTotals(models.Model):
    """What a rollup row sums (the same for every grain)."""

    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=22, decimal_places=9, default=0)

    class Meta:
        abstract = True


class RollupSums(RollupTotals):
    """The daily grains' slice columns: a UTC day of one tenant's key and model."""

    day = models.DateField()
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    api_key = models.ForeignKey(ApiKey, on_delete=models.PROTECT, related_name="+")
    model = models.CharField(max_length=200, blank=True, default="", help_text="Served, else asked.")

    class Meta:
        abstract = True


class UsageDailyRollup(RollupSums):
    """Events summed per UTC day × tenant × key × session_id × model; recomputed whole per (day, tenant)."""

    session_id = models.CharField(max_length=256, blank=True, default="")

    class Meta:
        ordering = ["day"]
        constraints = [
            # Also the index of the reports' main query: one tenant, a day range.
            models.UniqueConstraint(
                fields=["tenant", "day", "api_key", "session_id", "model"], name="usage_rollup_slice_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["day"], name="usage_rollup_day_idx"),
            models.Index(fields=["tenant", "session_id", "day"], name="usage_rollup_session_idx"),
            models.Index(fields=["api_key", "day"], name="usage_rollup_key_idx"),
            # One (tenant, day, key, model) slice in cost order, ties by session: the lists
            # usage.session_top reads from the top where a range's month is read as days or the
            # filter names a key or model (a session has one row per slice).
            models.Index(
                fields=["tenant", "day", "api_key", "model", "-cost_usd", "session_id"],
                name="usage_rollup_slice_cost_idx",
            ),
        ]


class UsageDailyKeyRollup(RollupSums):
    """The same sums without the session: per UTC day × tenant × key × model, recomputed with the
    session grain (usage.rollups). A session can be one per request, so the session grain grows
    with traffic; this one grows with keys × models × days. Reports that neither group nor filter
    by session read it (usage.selectors)."""

    class Meta:
        ordering = ["day"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "api_key", "model"], name="usage_key_rollup_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["day"], name="usage_key_rollup_day_idx"),
            models.Index(fields=["api_key", "day"], name="usage_key_rollup_key_idx"),
        ]


class UsageMonthlySessionRollup(RollupTotals):
    """The session grain summed per calendar month (UTC) × tenant × session_id, without key or
    model: what "Top sessions" and "group by session" read, because the daily session grain has
    about a row per request when sessions are short and a month of it is nearly the ledger.

    Kept equal to the sum of the month's UsageDailyRollup rows in the transaction that recomputes
    a day (usage.rollups: the day's old rows subtracted, its new rows added), so a report may take
    a month's row and subtract the days it does not cover (usage.session_months)."""

    month = models.DateField(help_text="The month's first day.")
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    session_id = models.CharField(max_length=256, blank=True, default="")

    class Meta:
        ordering = ["month"]
        constraints = [
            # Also the index of one tenant's month (tenant admins, finance's tenant filter).
            models.UniqueConstraint(
                fields=["tenant", "month", "session_id"], name="usage_session_month_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["month"], name="usage_session_month_idx"),
            # One tenant's month in cost order, ties by session: the lists usage.session_top reads
            # from the top, a batch at a time, instead of every session of the month.
            models.Index(
                fields=["tenant", "month", "-cost_usd", "session_id"], name="usage_session_month_cost_idx"
            ),
        ]


class UsageRollupDelta(RollupTotals):
    """What a write of events changed in one session-grain rollup row, not yet folded into the
    rollups: +1 request per event stored, new − old for a stream's provisional row rewritten.

    Written in the transaction that writes the events (usage.store), deleted in the transaction
    that adds it to the rollups (usage.rollups): so at every instant rollups + deltas = events,
    and reports read both (usage.selectors), never the events. Append-only between folds, a few
    rows per flush batch, so it stays small. The foreign keys are not constrained in the database:
    a delta's tenant and key are those of the events written with it, which are."""

    day = models.DateField()
    tenant = models.ForeignKey(
        Tenant, on_delete=models.DO_NOTHING, related_name="+", db_index=False, db_constraint=False
    )
    api_key = models.ForeignKey(
        ApiKey, on_delete=models.DO_NOTHING, related_name="+", db_index=False, db_constraint=False
    )
    session_id = models.CharField(max_length=256, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="", help_text="Served, else asked.")

    class Meta:
        indexes = [
            # The fold's slice and the reports' range: one tenant's days, or every tenant's.
            models.Index(fields=["tenant", "day"], name="usage_delta_slice_idx"),
            models.Index(fields=["day"], name="usage_delta_day_idx"),
        ]


class UsageRollupStale(models.Model):
    """A (day, tenant) whose rollups no longer match its events. Each write of events bumps
    `generation`; the aggregator removes the row only if the generation it summed is still current.

    The store's writes come with their deltas (UsageRollupDelta): the aggregator folds those in.
    A mark written any other way (before the delta journal existed, by hand, by an operator's
    request) has `recompute` set, its database default: the slice is then recomputed whole from
    its events, since no delta says what changed."""

    day = models.DateField()
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    generation = models.BigIntegerField(default=1)
    recompute = models.BooleanField(
        db_default=True, help_text="Recompute the slice from its events instead of folding its deltas."
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "tenant"], name="usage_stale_slice_unique")]


class LedgerPartitionDrop(models.Model):
    """A month of events dropped by the ledger's retention (usage.partitions): its partition was
    detached and dropped whole, its rollups kept. Also the retention horizon: no event dated
    before the latest `range_end` is stored again, and no rollup of such a day is recomputed
    (its events are gone: a recompute would wipe what the rollups still hold)."""

    partition = models.CharField(max_length=63, unique=True)
    range_start = models.DateTimeField()
    range_end = models.DateTimeField(db_index=True)
    events = models.BigIntegerField(help_text="Rows the partition held when it was dropped.")
    cost_usd = models.DecimalField(
        max_digits=22, decimal_places=9, help_text="Their cost (the rollups of those days keep it)."
    )
    retention_months = models.PositiveIntegerField()
    dropped_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-range_end"]

    def __str__(self) -> str:
        return self.partition


class UsageReport(UsageDailyRollup):
    """The finance report page in the admin (a proxy: it gives the page an admin entry and permissions)."""

    class Meta:
        proxy = True
        default_permissions = ("view",)
        permissions = [("export_usage_csv", "Can export usage events as CSV")]
        verbose_name = verbose_name_plural = "usage report"
