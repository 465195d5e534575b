"""Signed tokens for HIS platforms that cannot present a client certificate.

A node's operators issue a token with the node's own key (``yidi certs token``); the HIS
sends it as ``authorization: Bearer <token>`` on the node's token port, which is TLS
without client certificates. The token is an ES256 JWT: issuer and audience are the node
(``yidi://node/<region>``), so it is valid at that node only, the subject is the caller
(``institution/H11010500001``), and it expires. The node verifies it with the public key
of its own certificate.

Because a token is a bearer credential, each one is bounded in every direction:

- it lives at most :data:`MAX_TTL` (``exp - iat``), and the verifier refuses a longer one, so
  no token works for longer than a day, even one minted with a leaked key;
- it names an institution or operator of the issuing node's region only, so a province's
  key cannot mint a national operator or another province's hospital;
- it carries its own random id (``jti``), the id of its chain (``sid``: the ``jti`` of the
  token an operator issued, which every refresh keeps) and when that chain began
  (``auth_time``). The node's :class:`RevocationList` names ids it refuses: revoking the id
  `yidi certs token` printed stops that token and every token refreshed from it;
- :class:`TokenRefresher` exchanges a valid token for a fresh one of the same chain, so a
  HIS keeps working without an operator each day, but only until ``auth_time`` plus the
  node's refresh limit: a stolen token cannot be refreshed for ever.
"""

from __future__ import annotations

import datetime
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client import CollectorRegistry, Counter

from yidi_core.errors import DomainError
from yidi_runtime.config import NodeSettings, region_contains
from yidi_runtime.identity import URI_SCHEME, CallerRole, Principal, Via, parse_subject
from yidi_runtime.logs import get_logger
from yidi_runtime.metrics import shared_metric

MAX_TTL = datetime.timedelta(hours=24)
"""The longest a token lives; the verifier refuses any whose ``exp - iat`` is longer."""
DEFAULT_TTL = datetime.timedelta(hours=8)
"""What `yidi certs token` issues unless told otherwise: a working day."""

_ALGORITHM = "ES256"
_LEEWAY = datetime.timedelta(seconds=30)
_CLAIMS = ["iss", "aud", "sub", "iat", "exp", "jti", "sid", "auth_time"]
_TOKEN_ID = re.compile(r"[0-9a-f]{32}")
_BEARER = "bearer "


class Refusal(StrEnum):
    """Why a token was refused: the ``cause`` label of ``yidi_tokens_refused_total``."""

    EXPIRED = "expired"
    REVOKED = "revoked"
    INVALID = "invalid"


def _node_uri(region: str) -> str:
    return f"{URI_SCHEME}node/{region}"


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def is_token_id(text: str) -> bool:
    """Whether ``text`` has the shape of a ``jti`` this module issues (32 lowercase hex digits)."""
    return _TOKEN_ID.fullmatch(text) is not None


def bearer_token(authorization: str) -> str:
    """The token of an ``authorization: Bearer <token>`` header; UNAUTHENTICATED for any other scheme."""
    if not authorization.lower().startswith(_BEARER):
        raise DomainError("UNAUTHENTICATED", "the authorization header must be 'Bearer <token>'")
    return authorization[len(_BEARER) :].strip()


@dataclass(frozen=True)
class SignedToken:
    """A token and what it says: issued here, or verified by :meth:`TokenVerifier.verify`."""

    token: str
    issuer: str
    """The region of the node whose key signed it (the only node it is valid at)."""
    principal: Principal
    jti: str
    sid: str
    """The chain's id: the ``jti`` of the token an operator issued, kept by every refresh."""
    issued_at: datetime.datetime
    expires_at: datetime.datetime
    auth_time: datetime.datetime
    """When an operator issued the chain's first token."""


def _load_private_key(key_file: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("tokens are signed with a node's EC key (ES256)")
    return key


def _sign(
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    principal: Principal,
    issued: datetime.datetime,
    expires: datetime.datetime,
    *,
    sid: str | None = None,
    auth_time: datetime.datetime | None = None,
) -> SignedToken:
    """Sign a token (JWT times are whole seconds); without ``sid``/``auth_time`` it starts a chain of its own."""
    issued, expires = issued.replace(microsecond=0), expires.replace(microsecond=0)
    jti = secrets.token_hex(16)
    sid = sid or jti
    auth_time = auth_time or issued
    claims = {
        "iss": _node_uri(issuer),
        "aud": _node_uri(issuer),
        "sub": principal.subject,
        "iat": int(issued.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": jti,
        "sid": sid,
        "auth_time": int(auth_time.timestamp()),
    }
    token = jwt.encode(claims, key, algorithm=_ALGORITHM)
    return SignedToken(token, issuer, principal, jti, sid, issued, expires, auth_time)


def _subject(issuer: str, subject: str) -> Principal:
    """The caller a token of node ``issuer`` names; ValueError for a subject that node's key may not name."""
    principal = parse_subject(subject, Via.TOKEN)
    if principal is None or principal.role is CallerRole.NODE:
        raise ValueError(f"a token names an institution or an operator, not {subject!r}")
    if not region_contains(issuer, principal.region):
        raise ValueError(f"{subject!r} lies outside region {issuer}: node {issuer}'s key cannot name it")
    return principal


def issue_token(
    key_file: Path,
    issuer_region: str,
    subject: str,
    ttl: datetime.timedelta = DEFAULT_TTL,
    *,
    now: datetime.datetime | None = None,
) -> SignedToken:
    """A token naming ``subject`` for the node of ``issuer_region``, signed with that node's key.

    It starts a chain of its own: its ``jti`` is what an operator revokes. ValueError for a
    subject the node may not name or a lifetime outside (0, :data:`MAX_TTL`].
    """
    principal = _subject(issuer_region, subject)
    if not datetime.timedelta(0) < ttl <= MAX_TTL:
        raise ValueError(f"a token's lifetime is above zero and at most {_hours(MAX_TTL)}, not {_hours(ttl)}")
    issued = now or _utc_now()
    return _sign(_load_private_key(key_file), issuer_region, principal, issued, issued + ttl)


def _hours(span: datetime.timedelta) -> str:
    return f"{span.total_seconds() / 3600:g} hours"


def _parse_revocations(text: str) -> tuple[frozenset[str], list[tuple[int, str]]]:
    """The ids a revocation list names, and its lines that name none (line number, text)."""
    ids, bad = set(), []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        if is_token_id(entry):
            ids.add(entry)
        else:
            bad.append((number, entry))
    return frozenset(ids), bad


def append_revocation(
    list_file: Path, jti: str, *, reason: str = "", now: datetime.datetime | None = None
) -> bool:
    """Add ``jti`` to a revocation list (created if missing), with when and why as a comment.

    False when the list names it already (nothing is written). One ``write`` of one line in
    append mode, so nodes re-reading the file meanwhile see the list before or after it.
    """
    if not is_token_id(jti):
        raise ValueError(f"{jti!r} is not a token id (32 hexadecimal digits, as `yidi certs token` prints)")
    text = list_file.read_text(encoding="utf-8") if list_file.exists() else ""
    if jti in _parse_revocations(text)[0]:
        return False
    when = (now or _utc_now()).astimezone(datetime.UTC).isoformat(timespec="seconds")
    note = " ".join(reason.split())
    line = f"{jti}  # revoked {when}" + (f": {note}" if note else "") + "\n"
    with list_file.open("a", encoding="utf-8") as handle:
        handle.write(("\n" if text and not text.endswith("\n") else "") + line)
    return True


class RevocationList:
    """The token ids a node refuses: a file its operators edit, re-read when it changes.

    One id per line (``jti`` or chain ``sid``), ``#`` starts a comment. The node checks the
    file's inode, size and mtime at most every ``check_interval_s`` seconds (0: on every
    call) and reads it again whole when they change, so a revocation takes effect without a
    restart. A line naming no id is logged and skipped. A file that can no longer be read
    keeps the list last read (and is logged): losing the file never un-revokes a token.
    """

    def __init__(
        self,
        path: Path,
        *,
        check_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = Path(path)
        self._interval = check_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._log = get_logger(revocation_list=str(self._path))
        self._signature: tuple[int, int, int] | None = self._stat()
        self._ids = self._read()
        self._checked = clock()

    def _stat(self) -> tuple[int, int, int]:
        found = os.stat(self._path)
        return found.st_ino, found.st_size, found.st_mtime_ns

    def _read(self) -> frozenset[str]:
        ids, bad = _parse_revocations(self._path.read_text(encoding="utf-8"))
        for number, entry in bad:
            self._log.warning("revocation list line names no token id; skipped", line=number, entry=entry)
        return ids

    def _refresh(self) -> None:
        try:
            signature = self._stat()
            if signature != self._signature:
                self._ids = self._read()
                self._signature = signature
                self._log.info("revocation list re-read", revoked=len(self._ids))
        except (OSError, UnicodeDecodeError) as error:
            if self._signature is not None:  # log once per loss, not at every check
                self._log.error("revocation list unreadable; keeping the ids last read", error=str(error))
            self._signature = None

    def revoked(self, *token_ids: str) -> str | None:
        """The first of ``token_ids`` the list names, or None; re-reads the file first when due."""
        now = self._clock()
        if now - self._checked >= self._interval and self._lock.acquire(blocking=False):
            try:
                self._checked = now
                self._refresh()
            finally:
                self._lock.release()
        return next((token_id for token_id in token_ids if token_id in self._ids), None)


def refusals_counter(registry: CollectorRegistry) -> Counter:
    """``yidi_tokens_refused_total{cause}`` on a node's registry, every cause at zero from the start."""

    def make(into: CollectorRegistry) -> Counter:
        counter = Counter(
            "yidi_tokens_refused",
            "Bearer tokens the node refused, by cause: expired, revoked, or invalid (a bad signature, "
            "another node's, a missing claim, a lifetime over 24 hours, a subject outside the node's region).",
            ("cause",),
            registry=into,
        )
        for cause in Refusal:
            counter.labels(cause.value)
        return counter

    return shared_metric(registry, "yidi_tokens_refused", make)


def _moment(claims: dict[str, Any], name: str) -> datetime.datetime:
    value = claims[name]
    try:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(value)
        return datetime.datetime.fromtimestamp(value, datetime.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise ValueError(f"its {name} is not a time") from None


class TokenVerifier:
    """Checks the tokens this node issued, with the public key of its certificate.

    ``revoked`` is the node's revocation list (None: nothing is revoked); refusals are
    counted by :class:`Refusal` on ``registry`` as ``yidi_tokens_refused_total``.
    """

    def __init__(
        self,
        cert_file: Path,
        region: str,
        *,
        revoked: RevocationList | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("token verification needs the node's EC certificate")
        self._key = key
        self._region = region
        self._uri = _node_uri(region)
        self._revoked = revoked
        self._refused = refusals_counter(registry or CollectorRegistry())

    @classmethod
    def for_node(cls, settings: NodeSettings, registry: CollectorRegistry) -> TokenVerifier | None:
        """The verifier of a node with TLS files (None without: tokens need TLS), with its revocation list."""
        refusals_counter(registry)  # on every node, so that dashboards and alerts find the series
        if settings.tls is None:
            return None
        revoked = (
            RevocationList(settings.tokens_revoked, check_interval_s=settings.tokens_revoked_check_s)
            if settings.tokens_revoked is not None
            else None
        )
        return cls(settings.tls.cert, settings.region, revoked=revoked, registry=registry)

    def _refuse(self, cause: Refusal, message: str) -> DomainError:
        self._refused.labels(cause.value).inc()
        return DomainError("UNAUTHENTICATED", message)

    def verify(self, token: str, *, now: datetime.datetime | None = None) -> SignedToken:
        """What a valid token says; UNAUTHENTICATED saying why for any other."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[_ALGORITHM],
                audience=self._uri,
                issuer=self._uri,
                # The times are checked below, against ``now``.
                options={"require": _CLAIMS, "verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
            signed = SignedToken(
                token,
                self._region,
                _subject(self._region, str(claims["sub"])),
                self._token_id(claims, "jti"),
                self._token_id(claims, "sid"),
                _moment(claims, "iat"),
                _moment(claims, "exp"),
                _moment(claims, "auth_time"),
            )
        except (jwt.InvalidTokenError, ValueError) as error:
            raise self._refuse(Refusal.INVALID, f"the token is not valid at this node: {error}") from None
        return self._check(signed, now or _utc_now())

    @staticmethod
    def _token_id(claims: dict[str, Any], name: str) -> str:
        value = claims[name]
        if not isinstance(value, str) or not is_token_id(value):
            raise ValueError(f"its {name} is not a token id")
        return value

    def _check(self, signed: SignedToken, now: datetime.datetime) -> SignedToken:
        lifetime = signed.expires_at - signed.issued_at
        if not datetime.timedelta(0) < lifetime <= MAX_TTL:
            raise self._refuse(
                Refusal.INVALID,
                f"the token lives {_hours(lifetime)}; tokens live at most {_hours(MAX_TTL)}",
            )
        if signed.auth_time > signed.issued_at:
            raise self._refuse(Refusal.INVALID, "the token's chain begins (auth_time) after it was issued")
        if signed.issued_at > now + _LEEWAY:
            raise self._refuse(Refusal.INVALID, "the token is issued in the future; check the clocks")
        if now >= signed.expires_at + _LEEWAY:
            raise self._refuse(
                Refusal.EXPIRED,
                f"the token expired at {signed.expires_at.isoformat()}; refresh a token before it expires, "
                "or ask the node's operators for a new one",
            )
        revoked = self._revoked.revoked(signed.jti, signed.sid) if self._revoked is not None else None
        if revoked is not None:
            # Someone still holds a withdrawn token: what an operator investigates (YidiRevokedTokenUsed).
            get_logger().warning(
                "revoked token presented",
                subject=signed.principal.subject,
                token_id=signed.jti,
                chain=signed.sid,
            )
            raise self._refuse(
                Refusal.REVOKED,
                f"the token was revoked by the node's operators (token id {revoked}); ask them for a new one",
            )
        return signed

    def principal(self, token: str, *, now: datetime.datetime | None = None) -> Principal:
        """The caller a valid token names; UNAUTHENTICATED saying why for any other."""
        return self.verify(token, now=now).principal


class TokenRefresher:
    """Exchanges a valid, unrevoked token for a fresh one of the same chain, signed with the node's key.

    The new token names the same caller, keeps the chain's ``sid`` and ``auth_time``, has a
    new ``jti`` and the presented token's lifetime from now, and never outlives the chain:
    no token of a chain is issued after ``auth_time + chain_limit``.
    """

    def __init__(self, verifier: TokenVerifier, key_file: Path, chain_limit: datetime.timedelta) -> None:
        self._verifier = verifier
        self._key = _load_private_key(key_file)
        self._chain_limit = chain_limit

    def refreshable_until(self, signed: SignedToken) -> datetime.datetime:
        """When ``signed``'s chain stops being refreshed; an operator issues the next token."""
        return signed.auth_time + self._chain_limit

    def refresh(self, token: str, *, now: datetime.datetime | None = None) -> SignedToken:
        """The next token of ``token``'s chain; UNAUTHENTICATED when ``token`` is not valid or its chain is over."""
        moment = now or _utc_now()
        current = self._verifier.verify(token, now=moment)
        # Never dated before the token it replaces (clocks may differ by the leeway).
        issued = max(moment, current.issued_at)
        until = self.refreshable_until(current)
        if issued >= until:
            raise DomainError(
                "UNAUTHENTICATED",
                f"the token cannot be refreshed any more: its chain began at {current.auth_time.isoformat()} "
                f"and refreshes end at {until.isoformat()}; ask the node's operators for a new token",
            )
        expires = min(issued + (current.expires_at - current.issued_at), until)
        return _sign(
            self._key,
            current.issuer,
            current.principal,
            issued,
            expires,
            sid=current.sid,
            auth_time=current.auth_time,
        )
