"""Alembic, driven from code: one shared environment, one history and version table per service.

Embedded nodes upgrade on start; production nodes refuse to start on an old schema and
say which command upgrades it, so a rolling deploy never runs new code on old tables.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData

from yidi_runtime.db import Database

_ENVIRONMENT = Path(__file__).with_name("migrations")


class SchemaOutOfDate(RuntimeError):
    """The database is behind the code; the message names the command that fixes it."""


def version_table(service: str) -> str:
    """Each service records its schema revision in its own table."""
    return f"alembic_version_{service}"


def _config(service: str, versions: Path, metadata: MetaData, connection: Connection | None) -> Config:
    config = Config()
    config.set_main_option("script_location", _ENVIRONMENT.as_posix())
    config.set_main_option("version_locations", versions.as_posix())
    config.set_main_option("path_separator", "os")
    config.attributes.update(
        connection=connection, target_metadata=metadata, version_table=version_table(service)
    )
    return config


def head_revision(service: str, versions: Path, metadata: MetaData) -> str | None:
    """The newest revision the code ships for this service."""
    return ScriptDirectory.from_config(_config(service, versions, metadata, None)).get_current_head()


def current_revision(database: Database) -> str | None:
    """The revision the database is at, or None when never migrated."""
    with database.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": version_table(database.service)}
        )
        return context.get_current_revision()


def upgrade(database: Database, versions: Path, metadata: MetaData, revision: str = "head") -> None:
    """Apply every pending migration of one service in one transaction."""
    with database.engine.begin() as connection:
        command.upgrade(_config(database.service, versions, metadata, connection), revision)


def downgrade(database: Database, versions: Path, metadata: MetaData, revision: str) -> None:
    """Step one service back to ``revision`` in one transaction (every migration says how)."""
    with database.engine.begin() as connection:
        command.downgrade(_config(database.service, versions, metadata, connection), revision)


def ensure_current(database: Database, versions: Path, metadata: MetaData) -> None:
    """Raise :class:`SchemaOutOfDate` unless the database is at the code's head revision."""
    head = head_revision(database.service, versions, metadata)
    current = current_revision(database)
    if current != head:
        raise SchemaOutOfDate(
            f"service {database.service}: database at revision {current or 'none'}, code needs {head}; "
            "run `yidi db upgrade` with the same configuration"
        )


def new_revision(database: Database, versions: Path, metadata: MetaData, message: str) -> None:
    """Autogenerate a migration for model changes (developers only)."""
    with database.engine.begin() as connection:
        config = _config(database.service, versions, metadata, connection)
        command.revision(config, message=message, autogenerate=True)
