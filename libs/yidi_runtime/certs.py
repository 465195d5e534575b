"""A development certificate authority: one CA, a certificate per node, institution and operator.

Production federations get their certificates from their own CA; this makes the same shape
for a demo or a test in a few milliseconds per certificate. Every leaf names its holder with
a ``yidi://`` URI in its subjectAltName (see :mod:`yidi_runtime.identity`); node
certificates also name the hosts they answer on, so clients verify them by address.

Layout of a folder made by :func:`init_pki` (``yidi certs init``)::

    ca.pem  ca.key                                  the federation's CA
    nodes/<region>.pem  nodes/<region>.key          a node's server and client certificate
    institutions/<code>.pem  institutions/<code>.key
    operators/<region>-<name>.pem  .key
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from yidi_runtime.config import TlsFiles
from yidi_runtime.identity import CallerRole, Principal

DEFAULT_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1")
_VALID_DAYS = 825


@dataclass(frozen=True)
class Pki:
    """Where a development PKI lives, and the files of each holder."""

    root: Path

    @property
    def ca(self) -> Path:
        """The CA certificate every party trusts."""
        return self.root / "ca.pem"

    def files(self, principal: Principal) -> TlsFiles:
        """The certificate, key and CA files of ``principal``."""
        folder, stem = _place(principal)
        return TlsFiles(self.root / folder / f"{stem}.pem", self.root / folder / f"{stem}.key", self.ca)

    def node(self, region: str) -> TlsFiles:
        """A node's files."""
        return self.files(Principal(CallerRole.NODE, region, region))

    def institution(self, code: str) -> TlsFiles:
        """An institution's files."""
        return self.files(Principal(CallerRole.INSTITUTION, code, code[1:7]))

    def operator(self, region: str, name: str) -> TlsFiles:
        """An operator's files."""
        return self.files(Principal(CallerRole.OPERATOR, name, region))


def _place(principal: Principal) -> tuple[str, str]:
    if principal.role is CallerRole.NODE:
        return "nodes", principal.region
    if principal.role is CallerRole.INSTITUTION:
        return "institutions", principal.name
    if principal.role is CallerRole.OPERATOR:
        return "operators", f"{principal.region}-{principal.name}"
    raise ValueError(f"{principal.role} has no certificate")


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _builder(subject: str, issuer: x509.Name, now: datetime.datetime) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
    )


def _host_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


class CertificateAuthority:
    """A CA key and certificate that signs leaves for principals."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self.key = key
        self.cert = cert

    @classmethod
    def create(cls, name: str = "yidi development CA") -> CertificateAuthority:
        """A new self-signed CA."""
        key = _new_key()
        issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (
            _builder(name, issuer, datetime.datetime.now(datetime.UTC))
            .public_key(key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @classmethod
    def load(cls, pki: Pki) -> CertificateAuthority:
        """The CA of an existing folder."""
        key = serialization.load_pem_private_key((pki.root / "ca.key").read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the CA key is not an EC key")
        return cls(key, x509.load_pem_x509_certificate(pki.ca.read_bytes()))

    def save(self, pki: Pki) -> None:
        """Write ``ca.pem`` and ``ca.key``."""
        _write_cert(pki.ca, self.cert)
        _write_key(pki.root / "ca.key", self.key)

    def issue(self, pki: Pki, principal: Principal, hosts: Iterable[str] = ()) -> TlsFiles:
        """Write a key and a certificate naming ``principal`` (and ``hosts``, for a node's server side)."""
        key = _new_key()
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(principal.uri)]
        names += [_host_name(host) for host in hosts]
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if hosts:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        cert = (
            _builder(principal.subject, self.cert.subject, datetime.datetime.now(datetime.UTC))
            .public_key(key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        files = pki.files(principal)
        _write_key(files.key, key)
        _write_cert(files.cert, cert)
        return files


def init_pki(
    root: Path,
    *,
    nodes: Iterable[str] = (),
    institutions: Iterable[str] = (),
    operators: Iterable[tuple[str, str]] = (),
    hosts: Iterable[str] = DEFAULT_HOSTS,
) -> Pki:
    """Create (or extend, keeping its CA) a development PKI under ``root``.

    ``nodes`` are region codes, ``institutions`` national institution codes, ``operators``
    (region, name) pairs; node certificates answer for ``hosts``.
    """
    pki = Pki(Path(root))
    if pki.ca.is_file():
        ca = CertificateAuthority.load(pki)
    else:
        ca = CertificateAuthority.create()
        ca.save(pki)
    host_list = tuple(hosts)
    for region in nodes:
        ca.issue(pki, Principal(CallerRole.NODE, region, region), host_list)
    for code in institutions:
        ca.issue(pki, Principal(CallerRole.INSTITUTION, code, code[1:7]))
    for region, name in operators:
        ca.issue(pki, Principal(CallerRole.OPERATOR, name, region))
    return pki
