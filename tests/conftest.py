"""Shared fixtures: a real PostgreSQL server for the session, fresh databases, and a started node.

The PostgreSQL server is started here (initdb into a temporary folder, listening on
127.0.0.1 only) unless ``YIDI_TEST_POSTGRES_URL`` names one already running. Database
tests run against both SQLite and PostgreSQL through the ``database_url`` fixture.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from yidi_harness.federation import share_planned_ports
from yidi_harness.postgres_server import fresh_databases
from yidi_harness.postgres_server import postgres_server as throwaway_postgres
from yidi_runtime.audit_service import GROUP as AUDIT
from yidi_runtime.db import Database
from yidi_runtime.migrate import upgrade
from yidi_runtime.server import Node
from yidi_services.node import GROUPS, start_node
from yidi_testing import settings_for

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Parallel workers (pytest-xdist) plan node ports from slices of their own."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw"):
        share_planned_ports(int(worker[2:]), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """Base URL (no database name) of a PostgreSQL server for this test session."""
    external = os.environ.get("YIDI_TEST_POSTGRES_URL")
    if external:
        yield external.rstrip("/")
        return
    with throwaway_postgres() as server:
        yield server.url


@pytest.fixture(scope="session")
def migrated_template(postgres_server: str) -> Iterator[str]:
    """A PostgreSQL database every service's migrations (the audit trail's too) ran on, from empty, once.

    Tests get copies of it: a node on a copy finds its schema at the head and starts without
    replaying every migration, which would otherwise cost each node half a second.
    """
    with fresh_databases(postgres_server, "yidi_template") as create:
        url = create()
        for group in [*GROUPS.values(), AUDIT]:
            database = Database.open(group.name, url)
            try:
                upgrade(database, group.versions, group.metadata)
            finally:
                database.dispose()
        yield url.rsplit("/", 1)[1]


@pytest.fixture
def postgres_databases(postgres_server: str, migrated_template: str) -> Iterator[Callable[[], str]]:
    """Makes fresh PostgreSQL databases, at the schema's head, for one test (one per node of a tree); all
    dropped afterwards."""
    with fresh_databases(postgres_server, "yidi_test", migrated_template) as create:
        yield create


@pytest.fixture
def postgres_url(postgres_databases: Callable[[], str]) -> str:
    """A fresh PostgreSQL database at the schema's head for one test, dropped afterwards."""
    return postgres_databases()


@pytest.fixture
def empty_postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database (no table at all), for tests of the migrations themselves."""
    with fresh_databases(postgres_server, "yidi_empty") as create:
        yield create()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """Run a test on the embedded default (None: SQLite files) and on PostgreSQL."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest) -> str | None:
    """An empty database: None (new SQLite files), or a PostgreSQL database without any table."""
    return None if request.param == "sqlite" else str(request.getfixturevalue("empty_postgres_url"))


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def module_database_factory(request: pytest.FixtureRequest) -> Iterator[Callable[[], str | None]]:
    """Like ``database_factory``, for a tree every test of a module shares (its databases dropped after it)."""
    if request.param == "sqlite":
        yield lambda: None
        return
    server = request.getfixturevalue("postgres_server")
    with fresh_databases(server, "yidi_module", request.getfixturevalue("migrated_template")) as create:
        yield create


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_factory(request: pytest.FixtureRequest) -> Callable[[], str | None]:
    """A fresh database per call: None (SQLite files in the node's data folder) or a new PostgreSQL database."""
    if request.param == "sqlite":
        return lambda: None
    create: Callable[[], str] = request.getfixturevalue("postgres_databases")
    return create


@pytest.fixture
def node(tmp_path: Path, database_url: str | None) -> Iterator[Node]:
    """A node running every service in process on a free port, on SQLite and on PostgreSQL."""
    started = start_node(settings_for(tmp_path, database_url, auto_migrate=True))
    yield started
    started.stop(0)


@pytest.fixture
def channel(node: Node) -> Iterator[grpc.Channel]:
    """A client channel to :func:`node`, for the generated stubs."""
    with grpc.insecure_channel(node.address) as opened:
        yield opened
