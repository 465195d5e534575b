"""What every `yidi` command that talks to a node shares: its channel, message ids and explaining a refusal.

``message_id`` is the node's own (``yidi_runtime.peers``), re-exported for the commands.

Loaded only by commands that dial a node, so `yidi calc` starts without gRPC.
"""

from __future__ import annotations

from pathlib import Path

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from rich.console import Console

from yidi_cli.client_tls import ClientTls
from yidi_runtime.peers import message_id

__all__ = ["REFUSED", "UNREACHABLE", "explain_refusal", "message_id", "open_channel"]

REFUSED = 1
UNREACHABLE = 3


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None


def open_channel(address: str, tls: ClientTls) -> grpc.Channel:
    """A channel to the node at ``address`` secured as ``tls`` says (checked by ``ClientTls.problem`` first).

    A client certificate makes it mutual TLS; a token rides on every call as
    ``authorization: Bearer …`` over TLS that checks the node against ``--ca``; ``--insecure``
    is plaintext.
    """
    if tls.insecure:
        return grpc.insecure_channel(address)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca), private_key=_read(tls.key), certificate_chain=_read(tls.cert)
    )
    if tls.token:
        credentials = grpc.composite_channel_credentials(
            credentials, grpc.access_token_call_credentials(tls.token)
        )
    return grpc.secure_channel(address, credentials)


def explain_refusal(error: grpc.RpcError) -> int:
    """Print why the node refused (reason, message, bad fields) and return the exit code to use."""
    console = Console(stderr=True)
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None and error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        console.print(f"yidi: node unreachable: {error.details()}", markup=False)
        return UNREACHABLE
    reason = error.code().name
    violations: list[tuple[str, str]] = []
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations = [(v.field, v.description) for v in bad.field_violations]
    console.print(f"refused: {reason}", markup=False)
    if not violations:
        console.print(error.details(), markup=False)
    for field, description in violations:
        console.print(f"  {field}: {description}", markup=False)
    return REFUSED
