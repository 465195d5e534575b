"""Authentication: the principal of each call, from its transport or its token.

- On the mutual-TLS port, the client certificate (verified against the federation's CA by
  the TLS handshake) names the caller in its ``yidi://`` URI subjectAltName.
- On the token port (TLS without client certificates), ``authorization: Bearer <token>``
  carries a token this node issued (:mod:`yidi_runtime.tokens`).
- On a call between this node's own services (in process, :mod:`yidi_runtime.local_calls`),
  the caller is the node itself.
- On a node explicitly run insecure for development, ``x-yidi-principal: institution/H…``
  may name a caller (so the rules can be tried without certificates); anyone else is the
  developer, who may do everything.

Anything else is UNAUTHENTICATED.
"""

from __future__ import annotations

import functools

import grpc

from yidi_core.errors import DomainError
from yidi_runtime.config import NodeSettings
from yidi_runtime.identity import DEVELOPER, CallerRole, Principal, Via, parse_subject
from yidi_runtime.tokens import TokenVerifier, bearer_token

_CERTIFICATE_NAMES = 1024
"""Callers whose certificate's names are remembered, parsed: a node's neighbours and its institutions' HIS."""

PRINCIPAL_HEADER = "x-yidi-principal"
"""Development only: the caller an insecure node should assume."""


def _metadata(context: grpc.ServicerContext, key: str) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return value if isinstance(value, str) else value.decode()
    return None


class Authenticator:
    """Finds the principal of a call on one of a node's listeners; ``tokens`` checks bearer tokens (None: refused)."""

    def __init__(
        self, settings: NodeSettings, *, local: bool = False, tokens: TokenVerifier | None = None
    ) -> None:
        self._local = (
            Principal(CallerRole.NODE, settings.region, settings.region, Via.LOCAL) if local else None
        )
        self._insecure = settings.insecure
        self._tokens = tokens

    def principal(self, context: grpc.ServicerContext) -> Principal:
        """The caller, or UNAUTHENTICATED saying what is missing."""
        if self._local is not None:
            return self._local
        uris = context.auth_context().get("peer_uri")
        if uris:
            return _from_certificate(tuple(uris))
        authorization = _metadata(context, "authorization")
        if authorization is not None and self._tokens is not None:
            return self._tokens.principal(bearer_token(authorization))
        if self._insecure:
            claimed = _metadata(context, PRINCIPAL_HEADER)
            if claimed is None:
                return DEVELOPER
            principal = parse_subject(claimed, Via.INSECURE)
            if principal is None:
                raise DomainError("UNAUTHENTICATED", f"{PRINCIPAL_HEADER} names no caller: {claimed!r}")
            return principal
        raise DomainError(
            "UNAUTHENTICATED", "present a client certificate, or a token on the node's token port"
        )


@functools.lru_cache(maxsize=_CERTIFICATE_NAMES)
def _from_certificate(uris: tuple[bytes, ...]) -> Principal:
    """The one caller a client certificate's URIs name (the same few certificates call again and again)."""
    principals = [found for uri in uris if (found := parse_subject(uri.decode())) is not None]
    if len(principals) != 1:
        raise DomainError(
            "UNAUTHENTICATED",
            "the client certificate must name exactly one yidi:// caller in its subjectAltName",
        )
    return principals[0]
