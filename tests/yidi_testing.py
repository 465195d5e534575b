"""Helpers shared by the service tests: node settings for a test, and a status's rich details."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from yidi_runtime.config import NodeSettings, load_settings


def settings_for(tmp_path: Path, database_url: str | None = None, **overrides: Any) -> NodeSettings:
    environ = {"YIDI_DATABASE_URL": database_url} if database_url else {}
    return load_settings(
        environ=environ, overrides={"data_dir": str(tmp_path), "grpc_port": 0, "metrics_port": 0, **overrides}
    )


def error_details(error: grpc.RpcError) -> dict[str, Any]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "the status carries no rich details"
    found: dict[str, Any] = {}
    for detail in status.details:
        for kind in (
            error_details_pb2.ErrorInfo,
            error_details_pb2.BadRequest,
            error_details_pb2.LocalizedMessage,
        ):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                found[kind.DESCRIPTOR.name] = message
    return found


def health_of(channel: grpc.Channel, service: str) -> int:
    """The ``grpc.health.v1`` status of one service (``""``: the whole node)."""
    response = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=5
    )
    return int(response.status)
