"""Signed tokens for HIS platforms that cannot present a client certificate.

A node's operators issue a token with the node's own key (``yidi certs token``); the HIS
sends it as ``authorization: Bearer <token>`` on the node's token port, which is TLS
without client certificates. The token is an ES256 JWT: issuer and audience are the node
(``yidi://node/<region>``), so it is valid at that node only, the subject is the caller
(``institution/H11010500001``), and it expires. The node verifies it with the public key
of its own certificate.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from yidi_core.errors import DomainError
from yidi_runtime.identity import URI_SCHEME, CallerRole, Principal, Via, parse_subject

_ALGORITHM = "ES256"
_LEEWAY = datetime.timedelta(seconds=30)


def _node_uri(region: str) -> str:
    return f"{URI_SCHEME}node/{region}"


def issue_token(
    key_file: Path,
    issuer_region: str,
    subject: str,
    ttl: datetime.timedelta,
    *,
    now: datetime.datetime | None = None,
) -> str:
    """A token naming ``subject`` for the node of ``issuer_region``, signed with that node's key."""
    principal = parse_subject(subject, Via.TOKEN)
    if principal is None or principal.role is CallerRole.NODE:
        raise ValueError(f"a token names an institution or an operator, not {subject!r}")
    key = serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
    issued = now or datetime.datetime.now(datetime.UTC)
    claims = {
        "iss": _node_uri(issuer_region),
        "aud": _node_uri(issuer_region),
        "sub": principal.subject,
        "iat": issued,
        "exp": issued + ttl,
    }
    return jwt.encode(claims, key, algorithm=_ALGORITHM)  # type: ignore[arg-type]


class TokenVerifier:
    """Checks the tokens this node issued, with the public key of its certificate."""

    def __init__(self, cert_file: Path, region: str) -> None:
        cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("token verification needs the node's EC certificate")
        self._key = key
        self._uri = _node_uri(region)

    def principal(self, token: str) -> Principal:
        """The caller a valid token names; UNAUTHENTICATED saying why for any other."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[_ALGORITHM],
                audience=self._uri,
                issuer=self._uri,
                leeway=_LEEWAY,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise _refused("the token has expired; ask the node's operators for a new one") from None
        except jwt.InvalidTokenError as error:
            raise _refused(f"the token is not valid at this node: {error}") from None
        principal = parse_subject(str(claims["sub"]), Via.TOKEN)
        if principal is None or principal.role is CallerRole.NODE:
            raise _refused("the token names no institution or operator")
        return principal


def _refused(message: str) -> DomainError:
    return DomainError("UNAUTHENTICATED", message)
