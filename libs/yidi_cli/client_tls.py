"""How a `yidi` command proves who it is to a node: the shared --cert/--key/--ca/--insecure/--token options.

A node runs mutual TLS (issue 9), so a command that dials one presents a client certificate
naming its caller (an operator, usually), or a signed token on the node's token port over
server-side TLS, or — for a node explicitly run insecure for local development — nothing at
all, but only when told so with ``--insecure``. Saying nothing is refused before any call: a
command must never fall back to plaintext by omission.

Loaded by every `yidi` command (typer reads the options at start-up), so it imports no gRPC;
:func:`yidi_cli.node_client.open_channel` turns a :class:`ClientTls` into a channel.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

_NOTHING_GIVEN = (
    "say how to reach the node: --cert, --key and --ca (a client certificate, e.g. from `yidi certs init`), "
    "--token with --ca (a node's token port), or --insecure for a node run insecure for local development "
    "(or YIDI_CLIENT_CERT/YIDI_CLIENT_KEY/YIDI_CLIENT_CA, YIDI_TOKEN, YIDI_CLIENT_INSECURE=1)"
)


@dataclass(frozen=True)
class ClientTls:
    """A caller's transport security: a client certificate, a bearer token, or explicitly none."""

    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None
    insecure: bool = False
    token: str | None = None

    def problem(self) -> str | None:
        """Why these options cannot reach a node (None: they can)."""
        if self.insecure:
            if self.cert or self.key or self.ca or self.token:
                return "--insecure cannot be combined with --cert, --key, --ca or --token"
            return None
        if bool(self.cert) != bool(self.key):
            return "--cert and --key go together: the client certificate and its private key"
        if not (self.cert or self.token):
            return (
                _NOTHING_GIVEN
                if self.ca is None
                else "--ca alone names no caller: add --cert and --key, or --token"
            )
        if self.ca is None:
            return "--ca is required: the CA certificate that signed the node's certificate"
        return None


_PEM = {"exists": True, "dir_okay": False, "show_envvar": True}
_PARAMETERS = (
    (
        "cert",
        Path | None,
        typer.Option(
            None,
            "--cert",
            envvar="YIDI_CLIENT_CERT",
            help="Client certificate (PEM) naming the caller.",
            **_PEM,
        ),
    ),
    (
        "key",
        Path | None,
        typer.Option(
            None,
            "--key",
            envvar="YIDI_CLIENT_KEY",
            help="The client certificate's private key (PEM).",
            **_PEM,
        ),
    ),
    (
        "ca",
        Path | None,
        typer.Option(
            None,
            "--ca",
            envvar="YIDI_CLIENT_CA",
            help="CA certificate (PEM) the node's certificate is checked against.",
            **_PEM,
        ),
    ),
    (
        "insecure",
        bool,
        typer.Option(
            False,
            "--insecure",
            envvar="YIDI_CLIENT_INSECURE",
            help="Plaintext, no identity: only for a node run insecure for local development.",
            show_envvar=True,
        ),
    ),
    (
        "token",
        str | None,
        typer.Option(
            None,
            "--token",
            envvar="YIDI_TOKEN",
            help="Bearer token from `yidi certs token`, sent over TLS (with --ca) to the node's token port.",
            show_envvar=True,
        ),
    ),
)


def dials_node(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the shared transport options; it receives them checked, as ``tls: ClientTls``.

    The command declares a keyword-only ``tls: ClientTls`` last; typer sees the five options
    in its place. Options that cannot reach a node stop the command with exit 2.
    """
    signature = inspect.signature(command, eval_str=True)
    kept = [parameter for name, parameter in signature.parameters.items() if name != "tls"]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)
        for name, annotation, option in _PARAMETERS
    ]

    @functools.wraps(command)
    def with_tls(**values: Any) -> Any:
        tls = ClientTls(*(values.pop(name) for name, _, _ in _PARAMETERS))
        problem = tls.problem()
        if problem is not None:
            typer.echo(f"yidi: {problem}", err=True)
            raise typer.Exit(2)
        return command(**values, tls=tls)

    parameters = [*kept, *added]
    with_tls.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    with_tls.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
    return with_tls
