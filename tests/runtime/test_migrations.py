"""Per-service migrations on SQLite and PostgreSQL, on start and through `yidi db`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Integer, String, inspect, select
from sqlalchemy.orm import Mapped, mapped_column

from yidi_runtime.config import load_settings
from yidi_runtime.db import Database, service_base, service_url
from yidi_runtime.migrate import SchemaOutOfDate, current_revision, head_revision
from yidi_services.node import GROUPS, start_node

YIDI = Path(sys.executable).with_name("yidi")


def run_yidi(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(YIDI), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )


def test_node_start_migrates_every_service_to_head(tmp_path: Path, empty_database_url: str | None) -> None:
    database_url = empty_database_url
    environ = {"YIDI_DATABASE_URL": database_url} if database_url else {}
    settings = load_settings(
        environ=environ,
        overrides={
            "data_dir": str(tmp_path),
            "grpc_port": 0,
            "metrics_port": "off",
            "auto_migrate": True,
            "insecure": True,
        },
    )
    node = start_node(settings)
    try:
        for service in node.services:
            head = head_revision(service.group.name, service.group.versions, service.group.metadata)
            assert head is not None
            assert current_revision(service.database) == head
            tables = inspect(service.database.engine).get_table_names()
            assert f"alembic_version_{service.group.name}" in tables
    finally:
        node.stop(0)
    if database_url is None:
        expected = [*GROUPS, "audit"]
        assert sorted(p.name for p in tmp_path.glob("*.db")) == sorted(f"{name}.db" for name in expected)


@pytest.mark.postgres
def test_production_node_refuses_an_old_schema_until_db_upgrade(
    tmp_path: Path, empty_postgres_url: str
) -> None:
    env = {"YIDI_DATABASE_URL": empty_postgres_url, "YIDI_DATA_DIR": str(tmp_path)}
    settings = load_settings(environ=env, overrides={"grpc_port": 0, "metrics_port": "off", "insecure": True})
    assert not settings.migrate_on_start
    with pytest.raises(SchemaOutOfDate, match="yidi db upgrade"):
        start_node(settings)

    before = run_yidi("db", "current", env=env)
    assert before.returncode == 0, before.stderr
    assert "behind" in before.stdout

    upgraded = run_yidi("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    after = run_yidi("db", "current", env=env)
    assert "behind" not in after.stdout and after.stdout.count("current") >= len(GROUPS)

    node = start_node(settings)
    node.stop(0)


def test_db_command_reports_configuration_errors_by_key() -> None:
    result = run_yidi("db", "upgrade", env={"YIDI_REGION": "99"})
    assert result.returncode == 2
    assert "YIDI_REGION" in result.stderr


Scratch = service_base("scratch")


class Note(Scratch):
    __tablename__ = "scratch_note"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[str] = mapped_column(String(40))


@pytest.fixture
def scratch_db(tmp_path: Path, database_url: str | None) -> Database:
    settings = load_settings(environ={}, overrides={"data_dir": str(tmp_path)})
    database = Database.open("scratch", database_url or service_url(settings, "scratch"))
    Scratch.metadata.create_all(database.engine)
    return database


def test_unit_of_work_commits_only_when_told(scratch_db: Database) -> None:
    with scratch_db.unit_of_work(write=True) as uow:
        uow.session.add(Note(id=1, body="kept"))
        uow.commit()
    with pytest.raises(RuntimeError), scratch_db.unit_of_work(write=True) as uow:
        uow.session.add(Note(id=2, body="half-written"))
        uow.session.flush()
        raise RuntimeError("refused after flushing")
    with scratch_db.unit_of_work() as uow:
        assert uow.session.scalars(select(Note.body)).all() == ["kept"]
    scratch_db.dispose()
