"""``yidi.auth.v1.TokenService``: a HIS on the token port exchanges its token for the next one.

Every node serves it (a node without TLS accepts no tokens, so there it refuses every
call). The caller must hold a token: the authorization rule admits institutions and
operators, and the servicer refuses any of them the interceptor did not authenticate by a
token. The refresh itself, and its bounds, are :class:`yidi_runtime.tokens.TokenRefresher`'s.
"""

from __future__ import annotations

import datetime

import grpc

from yidi.auth.v1 import token_service_pb2 as api
from yidi.auth.v1 import token_service_pb2_grpc as api_grpc
from yidi_core.errors import DomainError
from yidi_runtime import identity
from yidi_runtime.authz import INSTITUTION, OPERATOR, allow, rules
from yidi_runtime.config import NodeSettings
from yidi_runtime.identity import Via
from yidi_runtime.logs import get_logger
from yidi_runtime.tokens import TokenRefresher, TokenVerifier, bearer_token
from yidi_runtime.wire import timestamp_message

SERVICE_NAME = api.DESCRIPTOR.services_by_name["TokenService"].full_name

ACCESS = rules(SERVICE_NAME, RefreshToken=allow(INSTITUTION, OPERATOR))
"""Institutions and operators; the servicer also wants them authenticated by a token."""


class TokenServicer(api_grpc.TokenServiceServicer):
    """Answers RefreshToken with the node's :class:`TokenRefresher` (None: the node accepts no tokens)."""

    def __init__(self, refresher: TokenRefresher | None) -> None:
        self._refresher = refresher

    def RefreshToken(
        self, request: api.RefreshTokenRequest, context: grpc.ServicerContext
    ) -> api.RefreshTokenResponse:
        """The next token of the caller's chain."""
        caller = identity.current.get()
        if self._refresher is None or caller is None or caller.via is not Via.TOKEN:
            subject = caller.subject if caller is not None else ""
            raise DomainError(
                "PERMISSION_DENIED_ROLE",
                "only a caller authenticated by a token, on the node's token port, may refresh it; "
                "a caller with a client certificate has no token to refresh",
                metadata={"caller": subject},
            )
        authorization = next(value for key, value in context.invocation_metadata() if key == "authorization")
        fresh = self._refresher.refresh(bearer_token(str(authorization)))
        until = self._refresher.refreshable_until(fresh)
        get_logger().info(
            "token refreshed",
            chain=fresh.sid,
            token_id=fresh.jti,
            expires=fresh.expires_at.isoformat(),
            refreshable_until=until.isoformat(),
        )
        return api.RefreshTokenResponse(
            token=fresh.token,
            token_id=fresh.jti,
            expire_time=timestamp_message(fresh.expires_at),
            refresh_expire_time=timestamp_message(until),
        )


def register_token_service(server: grpc.Server, settings: NodeSettings, tokens: TokenVerifier | None) -> str:
    """Serve the token service on ``server``, refreshing with the node's key; the full service name."""
    refresher = (
        TokenRefresher(tokens, settings.tls.key, datetime.timedelta(days=settings.tokens_refresh_max_days))
        if tokens is not None and settings.tls is not None
        else None
    )
    api_grpc.add_TokenServiceServicer_to_server(TokenServicer(refresher), server)
    return SERVICE_NAME
