"""Shared fixtures: a real PostgreSQL server for the session, fresh databases, and a started node.

The PostgreSQL server is started here (initdb into a temporary folder, listening on
127.0.0.1 only) unless ``YIDI_TEST_POSTGRES_URL`` names one already running. Database
tests run against both SQLite and PostgreSQL through the ``database_url`` fixture.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import create_engine, text

from yidi_cli.federation import free_port
from yidi_runtime.server import Node
from yidi_services.node import start_node
from yidi_testing import settings_for

REPO = Path(__file__).resolve().parents[1]


def _postgres_bin() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not candidates:
        raise RuntimeError(
            "PostgreSQL server binaries not found: install Debian's postgresql package "
            "(scripts/test does) or set YIDI_TEST_POSTGRES_URL"
        )
    return candidates[-1].parent


def _as_postgres_user(command: list[str]) -> list[str]:
    """initdb refuses to run as root; run the server as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """Base URL (no database name) of a PostgreSQL server for this test session."""
    external = os.environ.get("YIDI_TEST_POSTGRES_URL")
    if external:
        yield external.rstrip("/")
        return
    binaries = _postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="yidi-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", free_port()
    subprocess.run(
        _as_postgres_user(
            [
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                "yidi",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
    subprocess.run(
        _as_postgres_user(
            [str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://yidi@127.0.0.1:{port}"
    finally:
        subprocess.run(
            _as_postgres_user([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_databases(postgres_server: str) -> Iterator[Callable[[], str]]:
    """Makes fresh, empty PostgreSQL databases for one test (one per node of a tree); all dropped afterwards."""
    names: list[str] = []
    admin = create_engine(f"{postgres_server}/postgres", isolation_level="AUTOCOMMIT")

    def create() -> str:
        name = f"yidi_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        names.append(name)
        return f"{postgres_server}/{name}"

    try:
        yield create
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_databases: Callable[[], str]) -> str:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    return postgres_databases()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """Run a test on the embedded default (None: SQLite files) and on PostgreSQL."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("postgres_url"))


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
