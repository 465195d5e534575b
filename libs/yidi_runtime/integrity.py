"""Message integrity across hops (报文防篡改): the originating node seals a message, its destination checks it.

A settlement travels through nodes that relay it (a city, its province, the national node,
another province), and mutual TLS only proves who the *last* hop was. So the node that makes
a settlement seals its business message: a digest of the message's canonical encoding
(deterministic protobuf, with the seal and the fields rewritten in transit cleared), SM3
where the installed ``cryptography`` offers it, else SHA-256, signed with ECDSA by the key
of the node's own mTLS certificate, which travels with the seal. Any receiver, however many
hops away, checks that certificate against its own CA, then the digest and the signature,
then that the signer is the node the message says made it. The seal is stored with the
effect, so a dispute can show which node sent what.

A node run insecure for local development has no key: it seals nothing and accepts what
arrives unsealed (saying so once in its log). A node with TLS refuses a missing, altered or
foreign seal with ``SIGNATURE_INVALID`` (UNAUTHENTICATED), naming the cause, and counts it in
``yidi_integrity_refusals_total{method, cause}``.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.backends import default_backend
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from google.api import field_behavior_pb2
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from prometheus_client import CollectorRegistry, Counter

from yidi.type.v1.payload_signature_pb2 import PayloadSignature
from yidi_core.errors import DomainError
from yidi_runtime.config import NodeSettings, TlsFiles, region_contains
from yidi_runtime.identity import CallerRole, parse_subject
from yidi_runtime.logs import get_logger
from yidi_runtime.metrics import shared_metric

SM3 = "SM3"
SHA256 = "SHA-256"
_HASHES: Mapping[str, type[hashes.HashAlgorithm]] = {SM3: hashes.SM3, SHA256: hashes.SHA256}
_TRUSTED_CERTIFICATES = 256
"""Signer certificates remembered once checked against the CA (a federation has a few dozen nodes)."""


_SUPPORTED = frozenset(
    name for name, hash_type in _HASHES.items() if default_backend().hash_supported(hash_type())
)
"""The digest algorithms the installed OpenSSL offers (asked once: every seal checked asks again)."""

DIGEST_ALGORITHM = SM3 if SM3 in _SUPPORTED else SHA256
"""What this process seals with: SM3 (国密) where OpenSSL offers it, else SHA-256."""


class Cause(StrEnum):
    """Why a seal was refused (the ``cause`` of the refusal's metadata and of the metric)."""

    MISSING = "missing"
    UNSUPPORTED_DIGEST = "unsupported_digest"
    UNKNOWN_SIGNER = "unknown_signer"
    DIGEST_MISMATCH = "digest_mismatch"
    BAD_SIGNATURE = "bad_signature"
    NOT_ORIGIN = "not_origin"
    OTHER_REQUEST = "other_request"


@dataclass(frozen=True)
class Sealed:
    """Where a message type carries its seal, and its fields rewritten in transit (dotted paths, left out).

    Output-only fields (``google.api.field_behavior``) are the receiver's, never the
    sender's, and are always left out.
    """

    field: str = "payload_signature"
    transient: tuple[str, ...] = ()


PAYLOAD = Sealed()
"""A message whose seal is its ``payload_signature`` and that nothing rewrites in transit."""

RECEIPT = Sealed(field="receipt")
"""An answer's receipt (回执): the receiver's seal over all it answered, ``request_digest`` included."""


@dataclass(frozen=True)
class Origin:
    """Who must have sealed a message, from what it holds: field path → region.

    The signer must be the node named by every ``node`` value (e.g. the route's origin, the
    region a settlement id starts with) and its subtree must hold every ``within`` value
    (the treatment region, the institution's region). A value that is empty fails: a rule
    that names a field refuses when the field is absent (leave out what a message may lack).
    """

    node: Mapping[str, str] = field(default_factory=dict)
    within: Mapping[str, str] = field(default_factory=dict)

    def problem(self, signer: str) -> str | None:
        """Why ``signer`` is not the origin, or None when it is."""
        for path, region in self.node.items():
            if region != signer:
                return f"{path} names node {region or 'none'}, not the signer {signer}"
        for path, region in self.within.items():
            if not region or not region_contains(signer, region):
                return f"{path} ({region or 'none'}) lies outside the signer {signer}'s region"
        return None


@dataclass(frozen=True, slots=True)
class Seal:
    """A seal as plain values, as the receivers store it (all empty for an unsealed message)."""

    digest_algorithm: str = ""
    digest: bytes = b""
    signature: bytes = b""
    signer_certificate: bytes = b""
    signer_admdvs: str = ""

    @classmethod
    def of(cls, message: PayloadSignature) -> Seal:
        """The values of a wire seal."""
        return cls(
            message.digest_algorithm,
            message.digest,
            message.signature,
            message.signer_certificate,
            message.signer_admdvs,
        )

    def message(self) -> PayloadSignature:
        """The wire seal (unset fields for an unsealed message)."""
        return PayloadSignature(
            digest_algorithm=self.digest_algorithm,
            digest=self.digest,
            signature=self.signature,
            signer_certificate=self.signer_certificate,
            signer_admdvs=self.signer_admdvs,
        )


@functools.cache
def _output_only(descriptor: Descriptor) -> tuple[str, ...]:
    """The output-only fields of a message type, read from its options once (every seal and check asks)."""
    return tuple(
        described.name
        for described in descriptor.fields
        if field_behavior_pb2.OUTPUT_ONLY
        in described.GetOptions().Extensions[field_behavior_pb2.field_behavior]
    )


def canonical(message: Message, sealed: Sealed) -> bytes:
    """What is digested: the deterministic encoding without the seal, the output-only and the transient fields."""
    content = type(message)()
    content.CopyFrom(message)
    content.ClearField(sealed.field)
    for name in _output_only(content.DESCRIPTOR):
        content.ClearField(name)
    for path in sealed.transient:
        *parents, name = path.split(".")
        target: Message | None = content
        for parent in parents:
            target = getattr(target, parent) if target is not None and target.HasField(parent) else None
        if target is not None:
            target.ClearField(name)
    return content.SerializeToString(deterministic=True)


@functools.cache
def _output_only(descriptor: Descriptor) -> tuple[str, ...]:
    """The fields of a message type marked output only (reading a field's options parses them: once per type)."""
    return tuple(
        described.name
        for described in descriptor.fields
        if field_behavior_pb2.OUTPUT_ONLY
        in described.GetOptions().Extensions[field_behavior_pb2.field_behavior]
    )


def digest(data: bytes, algorithm: str) -> bytes:
    """``data`` hashed with ``algorithm`` (SM3 or SHA-256)."""
    hasher = hashes.Hash(_HASHES[algorithm]())
    hasher.update(data)
    return hasher.finalize()


def _certificate(data: bytes) -> x509.Certificate:
    """A certificate in PEM or DER."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def node_region(certificate: x509.Certificate) -> str | None:
    """The region of the one ``yidi://node/<region>`` URI the certificate names, None otherwise."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    regions = set()
    for uri in names.get_values_for_type(x509.UniformResourceIdentifier):
        principal = parse_subject(uri)
        if principal is not None and principal.role is CallerRole.NODE:
            regions.add(principal.region)
    return regions.pop() if len(regions) == 1 else None


def _digest_matches(message: Message, seal: PayloadSignature, sealed: Sealed) -> bool:
    return hmac.compare_digest(digest(canonical(message, sealed), seal.digest_algorithm), seal.digest)


def _signed_by(key: ec.EllipticCurvePublicKey, seal: PayloadSignature) -> bool:
    try:
        key.verify(seal.signature, seal.digest, ec.ECDSA(Prehashed(_HASHES[seal.digest_algorithm]())))
    except InvalidSignature:
        return False
    return True


def matches(message: Message, seal: PayloadSignature, sealed: Sealed = PAYLOAD) -> bool:
    """Whether ``seal`` is its certificate's key's signature of ``message`` as it is (no trust decided).

    For anyone holding a stored message and its seal, e.g. to show in a dispute what a node signed.
    """
    if seal.digest_algorithm not in _SUPPORTED or not _digest_matches(message, seal, sealed):
        return False
    try:
        key = _certificate(seal.signer_certificate).public_key()
    except ValueError:
        return False
    return isinstance(key, ec.EllipticCurvePublicKey) and _signed_by(key, seal)


def refusals_counter(registry: CollectorRegistry) -> Counter:
    """``yidi_integrity_refusals_total`` on a node's registry (one per registry: several services share it)."""
    return shared_metric(
        registry,
        "yidi_integrity_refusals",
        lambda into: Counter(
            "yidi_integrity_refusals_total",
            "Messages refused SIGNATURE_INVALID: a seal missing, altered, foreign or not the origin's.",
            ("method", "cause"),
            registry=into,
        ),
    )


@dataclass(frozen=True)
class _Identity:
    """This node's signing key and certificate (DER), and the region the certificate names."""

    key: ec.EllipticCurvePrivateKey
    certificate: bytes
    region: str

    @classmethod
    def load(cls, tls: TlsFiles) -> _Identity:
        key = serialization.load_pem_private_key(tls.key.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{tls.key}: a node's key must be an EC key to seal messages")
        certificate = _certificate(tls.cert.read_bytes())
        region = node_region(certificate)
        if region is None:
            raise ValueError(f"{tls.cert}: the certificate names no yidi://node/<region>")
        return cls(key, certificate.public_bytes(serialization.Encoding.DER), region)


@dataclass(frozen=True)
class _Signer:
    """A signer certificate issued by our CA: the node it names and its key."""

    region: str
    key: ec.EllipticCurvePublicKey
    not_before: datetime
    not_after: datetime


class _Refused(Exception):
    def __init__(self, cause: Cause, message: str) -> None:
        super().__init__(message)
        self.cause = cause


class NodeIntegrity:
    """One node's seals: made with its certificate's key, checked against its CA; none on an insecure node.

    Keys and certificates are read once, here; a signer certificate is checked against the
    CA once and remembered (its validity period is checked on every message).
    """

    def __init__(self, settings: NodeSettings, registry: CollectorRegistry | None = None) -> None:
        self._identity = None if settings.tls is None else _Identity.load(settings.tls)
        self._ca = None if settings.tls is None else _certificate(settings.tls.ca.read_bytes())
        self._refusals = refusals_counter(registry if registry is not None else CollectorRegistry())
        self._log = get_logger(node=settings.label)
        self._warned = False
        self._signer = functools.lru_cache(maxsize=_TRUSTED_CERTIFICATES)(self._issued_signer)

    @property
    def sealing(self) -> bool:
        """Whether this node seals and requires seals (it runs mutual TLS)."""
        return self._identity is not None

    def seal(self, message: Message, sealed: Sealed = PAYLOAD) -> None:
        """Set ``message``'s seal (in place); nothing on an insecure node."""
        if self._identity is None:
            return
        algorithm = DIGEST_ALGORITHM
        value = digest(canonical(message, sealed), algorithm)
        signature = self._identity.key.sign(value, ec.ECDSA(Prehashed(_HASHES[algorithm]())))
        getattr(message, sealed.field).CopyFrom(
            PayloadSignature(
                digest_algorithm=algorithm,
                digest=value,
                signature=signature,
                signer_certificate=self._identity.certificate,
                signer_admdvs=self._identity.region,
            )
        )

    def verify(
        self, method: str, message: Message, origin: Origin, sealed: Sealed = PAYLOAD, where: str = ""
    ) -> str:
        """Accept ``message`` only if sealed, unaltered, by a node of our CA that is its ``origin``.

        Returns the signer's region ("" on an insecure node). Raises ``SIGNATURE_INVALID``
        naming the cause; ``where`` prefixes the seal's field path (``entries[3].``). An
        insecure node accepts anything, with a warning the first time.
        """
        if self._identity is None:
            if not self._warned:
                self._warned = True
                self._log.warning(
                    "INSECURE: messages are accepted without checking their seals (tls.insecure = true)",
                    method=method,
                )
            return ""
        path = f"{where}{sealed.field}"
        seal: PayloadSignature = getattr(message, sealed.field)
        try:
            return self._check(message, seal, origin, sealed)
        except _Refused as refusal:
            self._refusals.labels(method, refusal.cause.value).inc()
            metadata = {"cause": refusal.cause.value, "field": path, "method": method}
            if seal.signer_admdvs:
                metadata["signer_admdvs"] = seal.signer_admdvs
            raise DomainError("SIGNATURE_INVALID", f"{path}: {refusal}", metadata=metadata) from None

    def receipt(self, answer: Message, request_seal: PayloadSignature) -> None:
        """Sign ``answer`` as the receipt for the sealed request whose seal is ``request_seal`` (in place).

        The answer names the request's digest (``request_digest``), so the receipt shows what
        this node acknowledged, and to which request. Nothing on an insecure node or for an
        unsealed request.
        """
        if self._identity is None or not request_seal.digest:
            return
        answer.request_digest = request_seal.digest  # type: ignore[attr-defined]
        self.seal(answer, RECEIPT)

    def check_receipt(
        self, method: str, answer: Message, request_seal: PayloadSignature, origin: Origin
    ) -> str:
        """The signer of ``answer``'s receipt for our sealed request, which must be ``origin``.

        SIGNATURE_INVALID for a missing, altered or foreign receipt, or one for another
        request; "" on an insecure node, which seals nothing.
        """
        if self._identity is None:
            return ""
        if answer.request_digest != request_seal.digest:  # type: ignore[attr-defined]
            self._refusals.labels(method, Cause.OTHER_REQUEST.value).inc()
            raise DomainError(
                "SIGNATURE_INVALID",
                "answer.receipt: the answer is not for the request sent",
                metadata={
                    "cause": Cause.OTHER_REQUEST.value,
                    "field": "answer.request_digest",
                    "method": method,
                },
            )
        return self.verify(method, answer, origin, RECEIPT, where="answer.")

    def _check(self, message: Message, seal: PayloadSignature, origin: Origin, sealed: Sealed) -> str:
        if not (seal.signature and seal.digest and seal.signer_certificate):
            raise _Refused(Cause.MISSING, "the message is not sealed by the node that made it")
        if seal.digest_algorithm not in _SUPPORTED:
            raise _Refused(
                Cause.UNSUPPORTED_DIGEST, f"digest algorithm {seal.digest_algorithm!r} is not supported here"
            )
        signer = self._signer(seal.signer_certificate)
        now = datetime.now(UTC)
        if not signer.not_before <= now <= signer.not_after:
            raise _Refused(Cause.UNKNOWN_SIGNER, f"the certificate of node {signer.region} is not valid now")
        if seal.signer_admdvs != signer.region:
            raise _Refused(
                Cause.UNKNOWN_SIGNER,
                f"the certificate names node {signer.region}, the seal claims {seal.signer_admdvs or 'none'}",
            )
        if not _digest_matches(message, seal, sealed):
            raise _Refused(Cause.DIGEST_MISMATCH, "the message was changed after it was sealed")
        if not _signed_by(signer.key, seal):
            raise _Refused(Cause.BAD_SIGNATURE, f"the signature is not node {signer.region}'s")
        problem = origin.problem(signer.region)
        if problem is not None:
            raise _Refused(Cause.NOT_ORIGIN, f"node {signer.region} did not make this: {problem}")
        return signer.region

    def _issued_signer(self, data: bytes) -> _Signer:
        """The signer a certificate names, once it is shown to be issued by our CA to a node."""
        assert self._ca is not None
        try:
            certificate = _certificate(data)
            certificate.verify_directly_issued_by(self._ca)
        except (ValueError, TypeError, InvalidSignature):
            raise _Refused(
                Cause.UNKNOWN_SIGNER, "the signer's certificate is not issued by this federation's CA"
            ) from None
        region, key = node_region(certificate), certificate.public_key()
        if region is None or not isinstance(key, ec.EllipticCurvePublicKey):
            raise _Refused(Cause.UNKNOWN_SIGNER, "the signer's certificate names no node with an EC key")
        return _Signer(region, key, certificate.not_valid_before_utc, certificate.not_valid_after_utc)
