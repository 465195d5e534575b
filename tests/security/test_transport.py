"""Mutual TLS and tokens: the caller is who its certificate or its token says, and nothing else."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from yidi.filing.v1 import filing_service_pb2, filing_service_pb2_grpc
from yidi.settlement.v1 import settlement_pb2, settlement_service_pb2, settlement_service_pb2_grpc
from yidi_harness.federation import free_port
from yidi_runtime.auth import PRINCIPAL_HEADER
from yidi_runtime.certs import Pki, init_pki
from yidi_runtime.config import ConfigError, TlsFiles
from yidi_runtime.server import Node
from yidi_runtime.tokens import issue_token
from yidi_services.node import start_node
from yidi_testing import error_details, settings_for

BEIJING = "110000"
HOSPITAL = "H11010500001"
OTHER_HOSPITAL = "H11010500002"
HOUR = datetime.timedelta(hours=1)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(
        tmp_path_factory.mktemp("pki"),
        nodes=[BEIJING, "130000"],
        institutions=[HOSPITAL],
        operators=[("130000", "ops"), (BEIJING, "ops")],
    )


@pytest.fixture(scope="module")
def beijing(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    settings = settings_for(
        tmp_path_factory.mktemp("beijing"),
        tls=pki.node(BEIJING),
        region=BEIJING,
        token_port=free_port(),
        auto_migrate=True,
        metrics_port="off",
    )
    started = start_node(settings)
    yield started
    started.stop(0)


def mtls(node: Node, files: TlsFiles) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        files.ca.read_bytes(), files.key.read_bytes(), files.cert.read_bytes()
    )
    return grpc.secure_channel(node.address, credentials)


def token_channel(node: Node, ca: Path) -> grpc.Channel:
    address = f"127.0.0.1:{node.settings.token_port}"
    return grpc.secure_channel(address, grpc.ssl_channel_credentials(ca.read_bytes()))


def get_settlement(
    channel: grpc.Channel, code: str, metadata: list[tuple[str, str]] | None = None
) -> grpc.RpcError:
    stub = settlement_service_pb2_grpc.SettlementServiceStub(channel)
    request = settlement_service_pb2.GetSettlementRequest(
        envelope=settlement_pb2.Envelope(fixmedins_code=code, mdtrtarea_admvs="110105"),
        setl_id="no-such-settlement",
    )
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetSettlement(request, metadata=metadata, timeout=10)
    return caught.value


def reason(error: grpc.RpcError) -> str:
    return error_details(error)["ErrorInfo"].reason


def test_an_institution_certificate_acts_as_that_institution_only(beijing: Node, pki: Pki) -> None:
    with mtls(beijing, pki.institution(HOSPITAL)) as channel:
        assert get_settlement(channel, HOSPITAL).code() is grpc.StatusCode.NOT_FOUND
        assert reason(get_settlement(channel, OTHER_HOSPITAL)) == "PERMISSION_DENIED_REGION"
        # A header claiming someone else changes nothing on a TLS node.
        claimed = [(PRINCIPAL_HEADER, f"institution/{OTHER_HOSPITAL}")]
        assert reason(get_settlement(channel, OTHER_HOSPITAL, claimed)) == "PERMISSION_DENIED_REGION"


def review(channel: grpc.Channel, metadata: list[tuple[str, str]] | None = None) -> grpc.RpcError:
    stub = filing_service_pb2_grpc.FilingServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.ReviewFiling(
            filing_service_pb2.ReviewFilingRequest(request_id="r-1", filing_id="no-such-filing"),
            metadata=metadata,
            timeout=10,
        )
    return caught.value


def test_review_needs_an_operator_of_the_region(beijing: Node, pki: Pki) -> None:
    with mtls(beijing, pki.institution(HOSPITAL)) as channel:
        assert (
            reason(review(channel, [(PRINCIPAL_HEADER, "operator/000000/root")])) == "PERMISSION_DENIED_ROLE"
        )
    with mtls(beijing, pki.operator("130000", "ops")) as channel:
        assert reason(review(channel)) == "PERMISSION_DENIED_REGION"
    with mtls(beijing, pki.operator(BEIJING, "ops")) as channel:
        assert review(channel).code() is not grpc.StatusCode.PERMISSION_DENIED


def test_a_client_without_a_certificate_cannot_reach_the_mutual_tls_port(beijing: Node, pki: Pki) -> None:
    with grpc.secure_channel(beijing.address, grpc.ssl_channel_credentials(pki.ca.read_bytes())) as channel:
        assert get_settlement(channel, HOSPITAL).code() is grpc.StatusCode.UNAVAILABLE


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def test_a_token_from_this_node_names_the_caller_on_the_token_port(beijing: Node, pki: Pki) -> None:
    token = issue_token(pki.node(BEIJING).key, BEIJING, f"institution/{HOSPITAL}", HOUR).token
    with token_channel(beijing, pki.ca) as channel:
        assert get_settlement(channel, HOSPITAL, bearer(token)).code() is grpc.StatusCode.NOT_FOUND
        assert reason(get_settlement(channel, OTHER_HOSPITAL, bearer(token))) == "PERMISSION_DENIED_REGION"


@pytest.mark.parametrize("problem", ["missing", "other node's key", "expired", "garbage", "not bearer"])
def test_a_bad_token_is_unauthenticated(beijing: Node, pki: Pki, problem: str) -> None:
    subject = f"institution/{HOSPITAL}"
    metadata = {
        "missing": [],
        "other node's key": bearer(issue_token(pki.node("130000").key, BEIJING, subject, HOUR).token),
        "expired": bearer(
            issue_token(
                pki.node(BEIJING).key,
                BEIJING,
                subject,
                HOUR,
                now=datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2),
            ).token
        ),
        "garbage": bearer("not.a.token"),
        "not bearer": [("authorization", "Basic dXNlcjpwYXNz")],
    }[problem]
    with token_channel(beijing, pki.ca) as channel:
        error = get_settlement(channel, HOSPITAL, metadata)
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert reason(error) == "UNAUTHENTICATED"


def test_a_token_never_names_a_node(pki: Pki) -> None:
    with pytest.raises(ValueError, match="not"):
        issue_token(pki.node(BEIJING).key, BEIJING, "node/130000", HOUR)


def test_a_node_without_tls_starts_only_when_told_it_is_insecure(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        start_node(settings_for(tmp_path, insecure=False))
    assert caught.value.key == "tls" and "insecure" in caught.value.problem
    with pytest.raises(ConfigError) as caught:
        start_node(settings_for(tmp_path, token_port=free_port()))
    assert caught.value.key == "listen.token_port"
