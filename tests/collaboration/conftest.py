"""Databases for nodes started once per module, on SQLite and on PostgreSQL (copies of the migrated template)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from collaboration_support import Clock

from yidi_harness.postgres_server import fresh_databases


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def module_databases(request: pytest.FixtureRequest) -> Iterator[Callable[[], str | None]]:
    """A fresh database per call for a module's nodes: None (SQLite files) or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield lambda: None
        return
    server: str = request.getfixturevalue("postgres_server")
    template: str = request.getfixturevalue("migrated_template")
    with fresh_databases(server, "yidi_tickets", template) as create:
        yield create


@pytest.fixture(scope="module")
def clock() -> Clock:
    """The module's clock; each test sets the day it needs."""
    return Clock()
