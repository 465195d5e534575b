"""A throwaway PostgreSQL server, and fresh databases on it, for tests and benchmarks.

Debian's server binaries (``scripts/ensure-postgres`` installs them), ``initdb`` into a
temporary folder, listening on 127.0.0.1 only with trust authentication and fsync off:
what is measured or tested is the services, not the disk. As root the server runs as the
``postgres`` user, because initdb refuses root. A fault test may restart its own server
under load; the test session's shared server is never restarted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from yidi_harness.federation import free_port

_TIMEOUT_S = 120


def _binaries() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not candidates:
        raise RuntimeError(
            "PostgreSQL server binaries not found: install Debian's postgresql package "
            "(scripts/ensure-postgres does)"
        )
    return candidates[-1].parent


def _as_postgres_user(command: list[str]) -> list[str]:
    """initdb refuses to run as root; the server runs as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class PostgresServer:
    """One server in a temporary folder; :attr:`url` is its base URL (no database name)."""

    def __init__(self, max_connections: int = 300) -> None:
        self._binaries = _binaries()
        self.root = Path(tempfile.mkdtemp(prefix="yidi-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://yidi@127.0.0.1:{self.port}"
        self._options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c max_connections={max_connections}"
        )

    def _run(self, program: str, *arguments: str, check: bool = True) -> None:
        command = _as_postgres_user([str(self._binaries / program), *arguments])
        subprocess.run(command, check=check, capture_output=True, timeout=_TIMEOUT_S)

    def start(self) -> None:
        """initdb and start; return once it accepts connections."""
        self._run("initdb", "-D", str(self.data), "-U", "yidi", "--auth=trust", "-E", "UTF8", "--no-sync")
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", self._options, "-l", str(self.root / "log"), "-w", "start"
        )

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection is cut; the server is back once this returns."""
        # -l again: pg_ctl does not remember the log file, and would otherwise wait on its output.
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-l", str(self.root / "log"), "-w", "restart")

    def stop(self) -> None:
        """Stop at once and remove the files."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def postgres_server(max_connections: int = 300) -> Iterator[PostgresServer]:
    """A started :class:`PostgresServer`, stopped and removed afterwards."""
    server = PostgresServer(max_connections)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@contextmanager
def fresh_databases(
    server_url: str, prefix: str = "yidi", template: str | None = None
) -> Iterator[Callable[[], str]]:
    """A factory of new databases on ``server_url`` (e.g. one per node); all dropped afterwards.

    Empty, or copies of the database ``template`` (which no one may be connected to), e.g.
    one already migrated to the code's head: a copy is made in the time an empty one is.
    """
    base = server_url.rstrip("/")
    # A connection per statement: the server may have been restarted in between.
    admin = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT", poolclass=NullPool)
    names: list[str] = []

    def create() -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        copied = f' TEMPLATE "{template}"' if template else ""
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"{copied}'))
        names.append(name)
        return f"{base}/{name}"

    try:
        yield create
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
