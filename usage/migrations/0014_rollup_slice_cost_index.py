"""The daily session grain's slices in cost order (usage.session_top's day lists).

Built CONCURRENTLY on PostgreSQL (the migration is not atomic): on a table of a hundred million
rows a plain CREATE INDEX would block the rollups' writes for its whole build. If the build fails
midway it leaves an INVALID index of this name: drop it (DROP INDEX CONCURRENTLY
usage_rollup_slice_cost_idx) and migrate again. SQLite (make run) builds it plainly.
"""

from typing import Any

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class AddIndexConcurrentlyOnPostgres(AddIndexConcurrently):
    """AddIndexConcurrently on PostgreSQL, AddIndex elsewhere (no CONCURRENTLY there)."""

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("usage", "0013_session_month_cost_index"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="usagedailyrollup",
            index=models.Index(
                fields=["tenant", "day", "api_key", "model", "-cost_usd", "session_id"],
                name="usage_rollup_slice_cost_idx",
            ),
        ),
    ]
