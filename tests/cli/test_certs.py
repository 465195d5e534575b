"""`yidi certs`: the development PKI it writes, and a node serving mutual TLS with it.

A node started with the PKI's files answers a client presenting a certificate of the same CA
and refuses, in the TLS handshake, a client without one or with one from another CA. A token
from `yidi certs token` is accepted on the node's token port; the command prints the id
`yidi certs revoke` takes, and refuses a lifetime over a day or a subject outside the node's
region.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography import x509
from typer.testing import CliRunner

from yidi.registry.v1 import institution_registry_service_pb2 as registry_api
from yidi.registry.v1 import institution_registry_service_pb2_grpc as registry_grpc
from yidi_cli.main import app
from yidi_harness.federation import DEMO_TOPOLOGY, free_port, sample_institutions
from yidi_runtime.certs import Pki, init_pki
from yidi_runtime.config import TlsFiles
from yidi_runtime.identity import CallerRole, Principal, parse_subject
from yidi_runtime.server import Node
from yidi_services.node import start_node
from yidi_testing import settings_for

runner = CliRunner()
BEIJING_HOSPITAL = "H11010100001"


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def named(cert: x509.Certificate) -> list[Principal | None]:
    """The principals the certificate's ``yidi://`` URIs name."""
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [parse_subject(uri) for uri in names.get_values_for_type(x509.UniformResourceIdentifier)]


def test_init_demo_certifies_every_node_sample_institution_and_demo_operator(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    made = runner.invoke(app, ["certs", "init", "--out", str(out), "--demo"])
    assert made.exit_code == 0, made.output
    assert "development only" in made.output
    pki = Pki(out)
    ca = certificate(pki.ca)
    regions = [spec.region for spec in DEMO_TOPOLOGY.nodes]
    expected = [Principal(CallerRole.NODE, region, region) for region in regions]
    expected += [Principal(CallerRole.INSTITUTION, code, code[1:7]) for code in sample_institutions()]
    expected += [Principal(CallerRole.OPERATOR, "demo", "000000")]
    expected += [Principal(CallerRole.OPERATOR, "ops", region) for region in regions]
    assert len(expected) == len(set(expected)) > len(regions) * 2
    for principal in expected:
        cert = certificate(pki.files(principal).cert)
        assert named(cert) == [principal], principal
        assert cert.issuer == ca.subject
        cert.verify_directly_issued_by(ca)
    node = certificate(pki.node("330400").cert)
    addresses = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in addresses.get_values_for_type(x509.IPAddress)
    hospital = certificate(pki.institution(BEIJING_HOSPITAL).cert)
    hospital_names = hospital.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert not hospital_names.get_values_for_type(x509.IPAddress), "only nodes answer on an address"


def test_init_keeps_the_ca_and_adds_to_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    first = runner.invoke(app, ["certs", "init", "--out", str(out), "--node", "110000"])
    assert first.exit_code == 0, first.output
    ca = Pki(out).ca.read_bytes()
    more = runner.invoke(
        app,
        [
            *("certs", "init", "--out", str(out), "--operator", "330000/zhang.wei", "--node", "330400"),
            *("--host", "node.example", "--institution", "H33040200001"),
        ],
    )
    assert more.exit_code == 0, more.output
    assert "CA (kept)" in more.output
    pki = Pki(out)
    assert pki.ca.read_bytes() == ca
    assert named(certificate(pki.operator("330000", "zhang.wei").cert)) == [
        Principal(CallerRole.OPERATOR, "zhang.wei", "330000")
    ]
    names = certificate(pki.node("330400").cert).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert {"localhost", "node.example"} <= set(names.value.get_values_for_type(x509.DNSName))
    assert pki.node("110000").cert.is_file() and pki.institution("H33040200001").key.is_file()


@pytest.mark.parametrize(
    "arguments",
    [
        ["--node", "11000"],
        ["--institution", "X11010100001"],
        ["--operator", "zhang.wei"],
        [],
    ],
)
def test_init_refuses_what_names_no_holder(tmp_path: Path, arguments: list[str]) -> None:
    result = runner.invoke(app, ["certs", "init", "--out", str(tmp_path / "pki"), *arguments])
    assert result.exit_code == 2
    assert not (tmp_path / "pki").exists()


# -- a node on mutual TLS -------------------------------------------------------------------------


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return init_pki(
        tmp_path / "pki", nodes=["110000"], institutions=[BEIJING_HOSPITAL], operators=[("110000", "ops")]
    )


@pytest.fixture
def token_port() -> int:
    return free_port()


@pytest.fixture
def beijing(tmp_path: Path, pki: Pki, token_port: int) -> Iterator[Node]:
    settings = settings_for(
        tmp_path / "node",
        tls=pki.node("110000"),
        services="registry",
        auto_migrate=True,
        token_port=token_port,
    )
    started = start_node(settings)
    yield started
    started.stop(0)


def dial(node: Node, files: TlsFiles | None, ca: Path) -> grpc.Channel:
    """A channel presenting ``files``' certificate (None: no client certificate) and trusting ``ca``."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=files.key.read_bytes() if files else None,
        certificate_chain=files.cert.read_bytes() if files else None,
    )
    return grpc.secure_channel(node.address, credentials)


def get_institution(channel: grpc.Channel) -> grpc.StatusCode:
    try:
        registry_grpc.InstitutionRegistryServiceStub(channel).GetInstitution(
            registry_api.GetInstitutionRequest(fixmedins_code=BEIJING_HOSPITAL), timeout=10
        )
    except grpc.RpcError as error:
        return error.code()  # type: ignore[attr-defined, no-any-return]
    return grpc.StatusCode.OK


def test_a_node_answers_a_client_with_a_certificate_of_its_ca(beijing: Node, pki: Pki) -> None:
    with dial(beijing, pki.institution(BEIJING_HOSPITAL), pki.ca) as channel:
        assert get_institution(channel) == grpc.StatusCode.NOT_FOUND  # authenticated, authorized, none yet


def test_a_node_refuses_a_client_without_a_certificate_or_from_another_ca(
    beijing: Node, pki: Pki, tmp_path: Path
) -> None:
    stranger = init_pki(tmp_path / "other", institutions=[BEIJING_HOSPITAL])
    with dial(beijing, None, pki.ca) as channel:
        assert get_institution(channel) == grpc.StatusCode.UNAVAILABLE
    with dial(beijing, stranger.institution(BEIJING_HOSPITAL), pki.ca) as channel:
        assert get_institution(channel) == grpc.StatusCode.UNAVAILABLE
    with grpc.insecure_channel(beijing.address) as channel:
        assert get_institution(channel) == grpc.StatusCode.UNAVAILABLE


def token_of(key: Path, region: str, subject: str, *more: str) -> str:
    """What `yidi certs token` prints (exit 0 checked)."""
    issued = runner.invoke(
        app, ["certs", "token", "--key", str(key), "--node", region, "--subject", subject, *more]
    )
    assert issued.exit_code == 0, issued.output
    return issued.stdout.strip()


def test_a_token_from_yidi_certs_token_is_accepted_on_the_token_port_only_from_its_node(
    beijing: Node, pki: Pki, token_port: int, tmp_path: Path
) -> None:
    token = token_of(pki.node("110000").key, "110000", f"institution/{BEIJING_HOSPITAL}", "--ttl-hours", "1")
    coverage = ["registry", "coverage", "--region", "110000", "--address", f"127.0.0.1:{token_port}"]
    accepted = runner.invoke(app, [*coverage, "--token", token, "--ca", str(pki.ca)])
    assert accepted.exit_code == 0, accepted.output
    other = init_pki(tmp_path / "other", nodes=["120000"])
    forged = token_of(other.node("120000").key, "110000", f"institution/{BEIJING_HOSPITAL}")
    refused = runner.invoke(app, [*coverage, "--token", forged, "--ca", str(pki.ca)])
    assert refused.exit_code == 1
    assert "refused: UNAUTHENTICATED" in refused.stderr


def test_certs_token_refuses_a_node_subject(pki: Pki) -> None:
    result = runner.invoke(
        app,
        [
            "certs",
            "token",
            "--key",
            str(pki.node("110000").key),
            "--node",
            "110000",
            "--subject",
            "node/110000",
        ],
    )
    assert result.exit_code == 2
    assert "institution or an operator" in result.stderr


def test_certs_token_prints_the_id_an_operator_revokes_it_by(pki: Pki) -> None:
    command = ["certs", "token", "--key", str(pki.node("110000").key), "--node", "110000"]
    command += ["--subject", f"institution/{BEIJING_HOSPITAL}", "--ttl-hours", "12"]
    printed = runner.invoke(app, command)
    assert printed.exit_code == 0, printed.output
    claims = jwt.decode(printed.stdout.strip(), options={"verify_signature": False})
    assert f"token id {claims['jti']}" in printed.stderr
    assert f"yidi certs revoke --list FILE {claims['jti']}" in printed.stderr
    as_json = runner.invoke(app, [*command, "--json"])
    assert as_json.exit_code == 0, as_json.output
    record = json.loads(as_json.stdout)
    claims = jwt.decode(record["token"], options={"verify_signature": False})
    assert record["token_id"] == claims["jti"] and record["subject"] == f"institution/{BEIJING_HOSPITAL}"
    issued, expires = (datetime.fromisoformat(record[name]) for name in ("issued_at", "expires_at"))
    assert expires - issued == timedelta(hours=12) and claims["exp"] - claims["iat"] == 12 * 3600


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        (["--ttl-hours", "25"], "at most 24 hours"),
        (["--ttl-hours", "0"], "above zero"),
        (["--subject", "operator/000000/root"], "outside region 110000"),
        (["--subject", "institution/H13010200001"], "outside region 110000"),
    ],
)
def test_certs_token_refuses_a_long_life_or_a_subject_outside_the_nodes_region(
    pki: Pki, arguments: list[str], problem: str
) -> None:
    command = ["certs", "token", "--key", str(pki.node("110000").key), "--node", "110000"]
    subject = [] if "--subject" in arguments else ["--subject", f"institution/{BEIJING_HOSPITAL}"]
    result = runner.invoke(app, [*command, *subject, *arguments])
    assert result.exit_code == 2
    assert problem in result.stderr and not result.stdout


def test_certs_revoke_adds_an_id_once_and_refuses_what_is_no_token_id(tmp_path: Path) -> None:
    listed = tmp_path / "revoked-tokens"
    token_id = "0123456789abcdef0123456789abcdef"
    first = runner.invoke(
        app, ["certs", "revoke", "--list", str(listed), token_id.upper(), "--reason", "lost"]
    )
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["certs", "revoke", "--list", str(listed), token_id])
    assert again.exit_code == 0 and "already revoked" in again.stderr
    [line] = listed.read_text().splitlines()
    assert line.startswith(f"{token_id}  # revoked ") and line.endswith(": lost")
    wrong = runner.invoke(app, ["certs", "revoke", "--list", str(listed), "institution/H11010100001"])
    assert wrong.exit_code == 2 and "not a token id" in wrong.stderr
    assert listed.read_text().splitlines() == [line]
