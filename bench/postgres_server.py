"""A throwaway PostgreSQL server for a benchmark run, and fresh databases on it.

The same server the test session starts (tests/conftest.py): Debian's binaries
(``scripts/ensure-postgres`` installs them when missing), ``initdb`` into a temporary folder,
listening on 127.0.0.1 only, trust authentication, fsync off — the benchmark measures the
services, not the disk. As root the server runs as the ``postgres`` user, because initdb
refuses root.
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

from yidi_cli.federation import free_port

REPO = Path(__file__).resolve().parents[1]


def _binaries() -> Path:
    subprocess.run([str(REPO / "scripts" / "ensure-postgres")], check=True)
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    return sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))[-1].parent


def _as_postgres_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def postgres_server(max_connections: int = 400) -> Iterator[str]:
    """Start a server; yield its base URL (no database name); stop it and remove its files."""
    binaries = _binaries()
    root = Path(tempfile.mkdtemp(prefix="yidi-bench-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", free_port()
    initdb = [
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
    subprocess.run(_as_postgres_user(initdb), check=True, capture_output=True)
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections={max_connections}"
    )
    pg_ctl = str(binaries / "pg_ctl")
    start = [pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]
    subprocess.run(_as_postgres_user(start), check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://yidi@127.0.0.1:{port}"
    finally:
        stop = [pg_ctl, "-D", str(data), "-m", "immediate", "stop"]
        subprocess.run(_as_postgres_user(stop), check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def fresh_databases(server_url: str, prefix: str = "yidi_bench") -> Iterator[Callable[[], str]]:
    """A factory of new, empty databases on ``server_url`` (one per node); all dropped afterwards."""
    base = server_url.rstrip("/")
    admin = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    names: list[str] = []

    def create() -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        names.append(name)
        return f"{base}/{name}"

    try:
        yield create
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
