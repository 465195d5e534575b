"""`yidi db …`: schema upgrades and revisions per service, printed as a table."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from yidi_runtime.config import NodeSettings
from yidi_runtime.db import opened, service_url
from yidi_runtime.migrate import current_revision, head_revision, upgrade


def upgrade_all(settings: NodeSettings) -> None:
    """Upgrade every configured service's database to the code's head revision."""
    from yidi_runtime.audit_service import GROUP as AUDIT
    from yidi_services.node import groups_for

    console = Console()
    for group in [*groups_for(settings), AUDIT]:
        with opened(group.name, service_url(settings, group.name)) as database:
            upgrade(database, group.versions, group.metadata)
            console.print(f"{group.name}: at {current_revision(database)}")


def show_revisions(settings: NodeSettings) -> None:
    """Print current and head revision for each configured service."""
    from yidi_runtime.audit_service import GROUP as AUDIT
    from yidi_services.node import groups_for

    table = Table("service", "database revision", "code head", "state")
    for group in [*groups_for(settings), AUDIT]:
        with opened(group.name, service_url(settings, group.name)) as database:
            current = current_revision(database)
        head = head_revision(group.name, group.versions, group.metadata)
        table.add_row(
            group.name, current or "none", head or "none", "current" if current == head else "behind"
        )
    Console().print(table)
