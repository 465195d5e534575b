"""The one Alembic environment every service shares.

The service's metadata, version table and connection arrive through ``config.attributes``
(set by :mod:`yidi_runtime.migrate`); each service keeps only its own ``versions`` folder.
"""

from alembic import context

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=config.attributes["target_metadata"],
    version_table=config.attributes["version_table"],
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
