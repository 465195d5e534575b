"""Every service's tables, as its migrations leave them, are exactly what its models map, on both databases.

Migrations that re-key tables (request ids kept per owner) recreate them on SQLite; this
catches a constraint, index or column a migration forgot or a model does not declare.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from yidi_runtime.db import Database, service_url
from yidi_runtime.migrate import upgrade
from yidi_services.node import GROUPS
from yidi_testing import settings_for


@pytest.mark.parametrize("service", sorted(GROUPS))
def test_the_migrated_schema_matches_the_models(
    tmp_path: Path, database_url: str | None, service: str
) -> None:
    group = GROUPS[service]
    database = Database.open(service, service_url(settings_for(tmp_path, database_url), service))
    try:
        upgrade(database, group.versions, group.metadata)
        with database.engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "include_object": lambda item, name, kind, *_: (
                        (item if kind == "table" else item.table).name in group.metadata.tables
                    ),
                },
            )
            assert compare_metadata(context, group.metadata) == []
    finally:
        database.dispose()
