"""The usage ledger partitioned by month of created_at (PostgreSQL declarative partitioning).

A unique constraint on a partitioned table must include the partition key, so request_id's
uniqueness becomes (request_id, created_at), created_at being fixed per request (see
usage.models.UsageEvent), and the primary key (id, created_at). On PostgreSQL the table is then
rebuilt partitioned: the old one is renamed, stripped of its index names (they are schema-wide),
a partitioned copy made with LIKE (columns, defaults, checks, identity), one partition per month
that holds events plus the current month and MESH_LEDGER_PARTITIONS_AHEAD ahead, and a DEFAULT
partition (an event of a month with no partition yet lands there, never lost), the rows copied,
then the primary key, unique constraint, indexes and foreign keys added under the names Django
gives them (so later migrations find them). The foreign keys to tenant and key are kept: PostgreSQL
supports them from a partitioned table, and they are the PROTECT semantics the ledger relies on;
dropping a partition drops its share of them with it. Reversible (back to one plain table, rows
kept). SQLite (make run's embedded mode) keeps a plain table: only the constraint changes apply.

No library: django-postgres-extra, the maintained one, needs its own database backend in place of
Django's (ENGINE psqlextra.backend); pg_partman is a server extension operators would have to
install. The DDL here and in usage.partitions is short and plain.
"""

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import migrations, models
from django.db.migrations.operations.base import Operation

TABLE = "usage_usageevent"
DEFAULT_PARTITION = f"{TABLE}_default"


def _month_add(start: datetime, months: int) -> datetime:
    index = start.year * 12 + start.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def _strip(cursor: Any, table: str) -> None:
    """Drop `table`'s primary key, unique constraints and indexes: their names are schema-wide and
    belong to the table that replaces it."""
    cursor.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype IN ('p', 'u')", [table]
    )
    for (name,) in cursor.fetchall():
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    cursor.execute(
        "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass", [table]
    )
    for (name,) in cursor.fetchall():
        cursor.execute(f"DROP INDEX {name}")


def _shape(schema_editor: Any, model: Any, primary_key: str) -> None:
    """The primary key, constraints, indexes and foreign keys of `model`, as Django names them."""
    schema_editor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY ({primary_key})")
    for constraint in model._meta.constraints:
        schema_editor.add_constraint(model, constraint)
    for statement in schema_editor._model_indexes_sql(model):
        schema_editor.execute(statement)
    for field in model._meta.local_fields:
        if field.remote_field and field.db_constraint:
            schema_editor.execute(schema_editor._create_fk_sql(model, field, "_fk_%(to_table)s_%(to_column)s"))


def _sequence_fix(cursor: Any) -> None:
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [TABLE])
    (sequence,) = cursor.fetchone()
    cursor.execute(f"SELECT setval('{sequence}', COALESCE((SELECT max(id) FROM {TABLE}), 0) + 1, false)")
    if sequence != f"public.{TABLE}_id_seq":
        cursor.execute(f"ALTER SEQUENCE {sequence} RENAME TO {TABLE}_id_seq")


class PartitionLedger(Operation):
    """Rebuild usage_usageevent partitioned by month (PostgreSQL only); state is unchanged."""

    reversible = True

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        model = to_state.apps.get_model(app_label, "UsageEvent")
        old = f"{TABLE}_unpartitioned"
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {old}")
            _strip(cursor, old)
            cursor.execute(
                f"CREATE TABLE {TABLE} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
                "INCLUDING IDENTITY) PARTITION BY RANGE (created_at)"
            )
            cursor.execute(
                f"SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC') FROM {old}"
            )
            months = {month.replace(tzinfo=UTC) for (month,) in cursor.fetchall()}
            current = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            ahead = getattr(settings, "MESH_LEDGER_PARTITIONS_AHEAD", 3)
            months |= {_month_add(current, n) for n in range(ahead + 1)}
            for month in sorted(months):
                cursor.execute(
                    f"CREATE TABLE {TABLE}_p{month:%Y_%m} PARTITION OF {TABLE} FOR VALUES FROM (%s) TO (%s)",
                    [month, _month_add(month, 1)],
                )
            cursor.execute(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {TABLE} DEFAULT")
            cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {old}")
            _shape(schema_editor, model, "id, created_at")
            cursor.execute(f"DROP TABLE {old}")
            _sequence_fix(cursor)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        model = to_state.apps.get_model(app_label, "UsageEvent")
        partitioned = f"{TABLE}_partitioned"
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {partitioned}")
            _strip(cursor, partitioned)
            cursor.execute(
                f"CREATE TABLE {TABLE} (LIKE {partitioned} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
                "INCLUDING IDENTITY)"
            )
            cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {partitioned}")
            _shape(schema_editor, model, "id")
            cursor.execute(f"DROP TABLE {partitioned}")  # its partitions with it
            _sequence_fix(cursor)

    def describe(self) -> str:
        return "Partition usage_usageevent by month of created_at (PostgreSQL)"


class Migration(migrations.Migration):

    dependencies = [
        ('keys', '0003_audit_roles_ceilings'),
        ('usage', '0009_event_endpoint'),
    ]

    operations = [
        migrations.CreateModel(
            name='LedgerPartitionDrop',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('partition', models.CharField(max_length=63, unique=True)),
                ('range_start', models.DateTimeField()),
                ('range_end', models.DateTimeField(db_index=True)),
                ('events', models.BigIntegerField(help_text='Rows the partition held when it was dropped.')),
                ('cost_usd', models.DecimalField(decimal_places=9, help_text='Their cost (the rollups of those days keep it).', max_digits=22)),
                ('retention_months', models.PositiveIntegerField()),
                ('dropped_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'ordering': ['-range_end'],
            },
        ),
        migrations.AlterField(
            model_name='usageevent',
            name='request_id',
            field=models.CharField(max_length=40),
        ),
        migrations.AddConstraint(
            model_name='usageevent',
            constraint=models.UniqueConstraint(fields=('request_id', 'created_at'), name='usage_event_request_unique'),
        ),
        PartitionLedger(),
    ]
