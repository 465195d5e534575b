"""Tokens: an id each, a lifetime of a day at most, subjects within the issuing node's region,
a revocation list the node re-reads, and a bounded chain of refreshes.

The rules are checked on the tokens module with an injected clock, then on a started node
over TLS through the generated stubs: tokens that break them are signed with the node's own
key directly (pyjwt), as a leaked key or a careless issuer would make them, to show that the
verifier refuses them whoever signed them.
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from grpc_health.v1 import health_pb2
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from yidi.auth.v1 import token_service_pb2, token_service_pb2_grpc
from yidi.settlement.v1 import settlement_pb2, settlement_service_pb2, settlement_service_pb2_grpc
from yidi_cli.main import app
from yidi_core.errors import DomainError
from yidi_harness.federation import free_port
from yidi_runtime.certs import Pki, init_pki
from yidi_runtime.config import TlsFiles
from yidi_runtime.server import Node
from yidi_runtime.tokens import (
    MAX_TTL,
    RevocationList,
    SignedToken,
    TokenRefresher,
    TokenVerifier,
    append_revocation,
    is_token_id,
    issue_token,
)
from yidi_services.node import start_node
from yidi_testing import error_details, health_of, settings_for

BEIJING = "110000"
HEBEI = "130000"
HOSPITAL = "H11010500001"
HEBEI_HOSPITAL = "H13010200001"
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)
NOW = datetime.datetime(2026, 5, 1, 8, 0, tzinfo=datetime.UTC)
CHAIN = datetime.timedelta(days=30)
runner = CliRunner()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(
        tmp_path_factory.mktemp("pki"),
        nodes=[BEIJING, HEBEI],
        institutions=[HOSPITAL],
        operators=[(BEIJING, "ops")],
    )


def claims(
    subject: str = f"institution/{HOSPITAL}",
    *,
    issuer: str = BEIJING,
    issued: datetime.datetime = NOW,
    lifetime: datetime.timedelta = HOUR,
    auth_time: datetime.datetime | None = None,
) -> dict[str, Any]:
    """Everything a well-formed token of node ``issuer`` says."""
    jti = secrets.token_hex(16)
    return {
        "iss": f"yidi://node/{issuer}",
        "aud": f"yidi://node/{issuer}",
        "sub": subject,
        "iat": int(issued.timestamp()),
        "exp": int((issued + lifetime).timestamp()),
        "jti": jti,
        "sid": jti,
        "auth_time": int((auth_time or issued).timestamp()),
    }


def craft(key_file: Path, payload: dict[str, Any]) -> str:
    """A token signed with a node's key directly, bypassing :func:`issue_token`'s rules."""
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    return jwt.encode(payload, key, algorithm="ES256")  # type: ignore[arg-type]


def verifier_of(pki: Pki, region: str = BEIJING, **options: Any) -> TokenVerifier:
    return TokenVerifier(pki.node(region).cert, region, **options)


def refused(call: Any, *args: Any, **kwargs: Any) -> str:
    """The message of the UNAUTHENTICATED refusal ``call`` raises."""
    with pytest.raises(DomainError) as caught:
        call(*args, **kwargs)
    assert caught.value.reason_code == "UNAUTHENTICATED"
    return caught.value.message


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the tokens module ----------------------------------------------------------------------------


def test_every_token_has_an_id_of_its_own_and_starts_its_own_chain(pki: Pki) -> None:
    first, second = (
        issue_token(pki.node(BEIJING).key, BEIJING, f"institution/{HOSPITAL}", now=NOW) for _ in range(2)
    )
    assert first.jti != second.jti and is_token_id(first.jti) and is_token_id(second.jti)
    assert (first.sid, first.auth_time, first.issued_at) == (first.jti, NOW, NOW)
    assert first.expires_at - first.issued_at == datetime.timedelta(hours=8)  # the default
    assert jwt.decode(first.token, options={"verify_signature": False})["jti"] == first.jti
    assert verifier_of(pki).verify(first.token, now=NOW + HOUR) == first


@pytest.mark.parametrize("claim", ["jti", "sid", "auth_time"])
def test_a_token_without_its_id_chain_or_chain_start_is_refused(pki: Pki, claim: str) -> None:
    payload = claims()
    del payload[claim]
    assert claim in refused(verifier_of(pki).verify, craft(pki.node(BEIJING).key, payload), now=NOW)
    malformed = claims() | {claim: "not-an-id" if claim != "auth_time" else "yesterday"}
    assert claim in refused(verifier_of(pki).verify, craft(pki.node(BEIJING).key, malformed), now=NOW)


def test_a_token_lives_a_day_at_most_when_issued_and_when_verified(pki: Pki) -> None:
    key, subject = pki.node(BEIJING).key, f"institution/{HOSPITAL}"
    for ttl in (MAX_TTL + datetime.timedelta(seconds=1), datetime.timedelta(0)):
        with pytest.raises(ValueError, match="24 hours"):
            issue_token(key, BEIJING, subject, ttl, now=NOW)
    assert verifier_of(pki).verify(issue_token(key, BEIJING, subject, MAX_TTL, now=NOW).token, now=NOW)
    long_lived = craft(key, claims(lifetime=DAY * 365))
    assert "at most 24 hours" in refused(verifier_of(pki).verify, long_lived, now=NOW)


@pytest.mark.parametrize(
    "subject", ["operator/000000/root", f"operator/{BEIJING}/ops", f"institution/{HOSPITAL}"]
)
def test_a_nodes_key_names_no_one_outside_its_region(pki: Pki, subject: str) -> None:
    hebei_key = pki.node(HEBEI).key
    with pytest.raises(ValueError, match="outside region 130000"):
        issue_token(hebei_key, HEBEI, subject, HOUR, now=NOW)
    minted = craft(hebei_key, claims(subject, issuer=HEBEI))
    assert "outside region 130000" in refused(verifier_of(pki, HEBEI).verify, minted, now=NOW)


@pytest.mark.parametrize(
    "subject", ["operator/130000/ops", "operator/130100/ops", f"institution/{HEBEI_HOSPITAL}"]
)
def test_a_nodes_key_names_anyone_within_its_region(pki: Pki, subject: str) -> None:
    signed = issue_token(pki.node(HEBEI).key, HEBEI, subject, HOUR, now=NOW)
    assert verifier_of(pki, HEBEI).principal(signed.token, now=NOW).subject == subject


def test_a_revocation_takes_effect_at_the_next_check_of_the_list_without_a_restart(
    pki: Pki, tmp_path: Path
) -> None:
    listed = tmp_path / "revoked-tokens"
    listed.write_text("# revoked tokens\nnot a token id\n")
    clock = Clock()
    verifier = verifier_of(pki, revoked=RevocationList(listed, check_interval_s=5, clock=clock))
    token = issue_token(pki.node(BEIJING).key, BEIJING, f"institution/{HOSPITAL}", now=NOW)
    assert verifier.verify(token.token, now=NOW)
    assert append_revocation(listed, token.jti, reason="laptop\nstolen", now=NOW)
    assert not append_revocation(listed, token.jti, now=NOW), "listed once"
    assert listed.read_text().splitlines()[-1] == f"{token.jti}  # revoked {NOW.isoformat()}: laptop stolen"
    clock.now += 4
    assert verifier.verify(token.token, now=NOW), "not checked again yet"
    clock.now += 1
    assert "revoked" in refused(verifier.verify, token.token, now=NOW)
    listed.unlink()
    clock.now += 5
    assert "revoked" in refused(verifier.verify, token.token, now=NOW), "a lost file un-revokes nothing"


def test_a_refresh_gives_a_new_id_and_a_fresh_expiry_in_the_same_chain(pki: Pki) -> None:
    verifier = verifier_of(pki)
    refresher = TokenRefresher(verifier, pki.node(BEIJING).key, CHAIN)
    first = issue_token(pki.node(BEIJING).key, BEIJING, f"operator/{BEIJING}/ops", 8 * HOUR, now=NOW)
    second = refresher.refresh(first.token, now=NOW + 6 * HOUR)
    assert second.jti != first.jti and second.token != first.token
    assert (second.sid, second.auth_time, second.principal) == (first.sid, NOW, first.principal)
    assert (second.issued_at, second.expires_at) == (NOW + 6 * HOUR, NOW + 14 * HOUR)
    assert verifier.verify(second.token, now=NOW + 13 * HOUR) == second
    assert refresher.refreshable_until(second) == NOW + CHAIN


def test_a_chain_of_refreshes_ends_at_the_limit_after_the_operator_issued_it(pki: Pki) -> None:
    refresher = TokenRefresher(verifier_of(pki), pki.node(BEIJING).key, CHAIN)
    token = issue_token(pki.node(BEIJING).key, BEIJING, f"institution/{HOSPITAL}", MAX_TTL, now=NOW)
    chain: list[SignedToken] = []
    for hours in range(20, 720, 20):  # a HIS refreshing every 20 hours
        token = refresher.refresh(token.token, now=NOW + hours * HOUR)
        chain.append(token)
    assert all(signed.expires_at <= NOW + CHAIN for signed in chain)
    assert chain[-1].expires_at == NOW + CHAIN, "the last token ends with the chain"
    message = refused(refresher.refresh, token.token, now=NOW + CHAIN)
    assert "cannot be refreshed any more" in message


def test_a_refresh_refuses_an_expired_token_and_revoking_the_issued_id_stops_the_whole_chain(
    pki: Pki, tmp_path: Path
) -> None:
    listed = tmp_path / "revoked-tokens"
    listed.touch()
    verifier = verifier_of(pki, revoked=RevocationList(listed, check_interval_s=0))
    refresher = TokenRefresher(verifier, pki.node(BEIJING).key, CHAIN)
    first = issue_token(pki.node(BEIJING).key, BEIJING, f"institution/{HOSPITAL}", HOUR, now=NOW)
    assert "expired" in refused(refresher.refresh, first.token, now=NOW + 2 * HOUR)
    second = refresher.refresh(first.token, now=NOW + HOUR / 2)
    third = refresher.refresh(second.token, now=NOW + HOUR)
    append_revocation(listed, second.jti)
    assert "revoked" in refused(refresher.refresh, second.token, now=NOW + HOUR)
    assert verifier.verify(third.token, now=NOW + HOUR), "revoking a refreshed token stops only that one"
    append_revocation(listed, first.jti)
    for token in (first, third):
        assert "revoked" in refused(verifier.verify, token.token, now=NOW + HOUR)
        assert "revoked" in refused(refresher.refresh, token.token, now=NOW + HOUR)


def test_refused_tokens_are_counted_by_cause(pki: Pki, tmp_path: Path) -> None:
    listed = tmp_path / "revoked-tokens"
    token = issue_token(pki.node(BEIJING).key, BEIJING, f"institution/{HOSPITAL}", HOUR, now=NOW)
    listed.write_text(f"{token.jti}\n")
    registry = CollectorRegistry()
    verifier = verifier_of(pki, revoked=RevocationList(listed), registry=registry)
    refused(verifier.verify, token.token, now=NOW)
    refused(verifier.verify, token.token, now=NOW + 2 * HOUR)
    refused(verifier.verify, "not.a.token", now=NOW)
    refused(verifier.verify, craft(pki.node(BEIJING).key, claims("operator/000000/root")), now=NOW)
    counted = {
        cause: registry.get_sample_value("yidi_tokens_refused_total", {"cause": cause})
        for cause in ("expired", "revoked", "invalid")
    }
    assert counted == {"expired": 1, "revoked": 1, "invalid": 2}


# -- a node on its token port ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def revoked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    listed = tmp_path_factory.mktemp("tokens") / "revoked-tokens"
    listed.write_text("# tokens the Beijing node refuses\n")
    return listed


@pytest.fixture(scope="module")
def beijing(pki: Pki, revoked: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    settings = settings_for(
        tmp_path_factory.mktemp("beijing"),
        tls=pki.node(BEIJING),
        region=BEIJING,
        services="settlement",
        token_port=free_port(),
        tokens_revoked=revoked,
        tokens_revoked_check_s=0,  # every call looks for changes: no waiting in the tests
        auto_migrate=True,
        metrics_port="off",
    )
    started = start_node(settings)
    yield started
    started.stop(0)


def now() -> datetime.datetime:
    """The node checks tokens against its own clock."""
    return datetime.datetime.now(datetime.UTC)


def token_channel(node: Node, ca: Path) -> grpc.Channel:
    address = f"127.0.0.1:{node.settings.token_port}"
    return grpc.secure_channel(address, grpc.ssl_channel_credentials(ca.read_bytes()))


def mtls(node: Node, files: TlsFiles) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        files.ca.read_bytes(), files.key.read_bytes(), files.cert.read_bytes()
    )
    return grpc.secure_channel(node.address, credentials)


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def get_settlement(channel: grpc.Channel, token: str) -> grpc.StatusCode:
    """NOT_FOUND: the token was accepted (there is no such settlement); else the refusal's code."""
    stub = settlement_service_pb2_grpc.SettlementServiceStub(channel)
    request = settlement_service_pb2.GetSettlementRequest(
        envelope=settlement_pb2.Envelope(fixmedins_code=HOSPITAL, mdtrtarea_admvs="110105"),
        setl_id="no-such-settlement",
    )
    try:
        stub.GetSettlement(request, metadata=bearer(token), timeout=10)
    except grpc.RpcError as error:
        return error.code()  # type: ignore[attr-defined, no-any-return]
    return grpc.StatusCode.OK


def refresh(channel: grpc.Channel, metadata: list[tuple[str, str]]) -> token_service_pb2.RefreshTokenResponse:
    return token_service_pb2_grpc.TokenServiceStub(channel).RefreshToken(
        token_service_pb2.RefreshTokenRequest(), metadata=metadata, timeout=10
    )


def refresh_refused(channel: grpc.Channel, metadata: list[tuple[str, str]]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        refresh(channel, metadata)
    return caught.value


def reason(error: grpc.RpcError) -> str:
    return error_details(error)["ErrorInfo"].reason


def issued(
    pki: Pki, lifetime: datetime.timedelta = HOUR, *, at: datetime.datetime | None = None
) -> SignedToken:
    return issue_token(pki.node(BEIJING).key, BEIJING, f"institution/{HOSPITAL}", lifetime, now=at)


def test_every_node_serves_the_token_service(beijing: Node, pki: Pki) -> None:
    with mtls(beijing, pki.operator(BEIJING, "ops")) as channel:
        assert health_of(channel, "yidi.auth.v1.TokenService") == health_pb2.HealthCheckResponse.SERVING


def test_a_his_refreshes_its_token_on_the_token_port_and_uses_the_new_one(beijing: Node, pki: Pki) -> None:
    first = issued(pki, 2 * HOUR)
    with token_channel(beijing, pki.ca) as channel:
        answer = refresh(channel, bearer(first.token))
        assert get_settlement(channel, answer.token) is grpc.StatusCode.NOT_FOUND  # accepted
    fresh = jwt.decode(answer.token, options={"verify_signature": False})
    assert answer.token_id == fresh["jti"] != first.jti
    assert (fresh["sid"], fresh["sub"]) == (first.jti, f"institution/{HOSPITAL}")
    assert fresh["exp"] - fresh["iat"] == 2 * 3600
    assert answer.expire_time.ToDatetime(datetime.UTC) == datetime.datetime.fromtimestamp(
        fresh["exp"], datetime.UTC
    )
    assert answer.refresh_expire_time.ToDatetime(datetime.UTC) == first.issued_at + CHAIN


@pytest.mark.parametrize("problem", ["expired", "chain over"])
def test_the_node_refuses_to_refresh_an_expired_token_or_one_whose_chain_is_over(
    beijing: Node, pki: Pki, problem: str
) -> None:
    token = {
        "expired": issued(pki, at=now() - 2 * HOUR).token,
        "chain over": craft(pki.node(BEIJING).key, claims(issued=now(), auth_time=now() - CHAIN - DAY)),
    }[problem]
    with token_channel(beijing, pki.ca) as channel:
        error = refresh_refused(channel, bearer(token))
    assert (error.code(), reason(error)) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")
    assert {"expired": "expired", "chain over": "cannot be refreshed any more"}[problem] in error.details()


def test_a_revoked_token_is_refused_as_soon_as_the_list_changes_with_its_refreshes(
    beijing: Node, pki: Pki, revoked: Path
) -> None:
    first = issued(pki)
    with token_channel(beijing, pki.ca) as channel:
        second = refresh(channel, bearer(first.token)).token
        assert get_settlement(channel, second) is grpc.StatusCode.NOT_FOUND
        before = beijing.metrics.registry.get_sample_value("yidi_tokens_refused_total", {"cause": "revoked"})
        assert before is not None
        result = runner.invoke(
            app,
            ["certs", "revoke", "--list", str(revoked), first.jti, "--reason", "the HIS server was stolen"],
        )
        assert result.exit_code == 0, result.output
        for token in (first.token, second):
            assert get_settlement(channel, token) is grpc.StatusCode.UNAUTHENTICATED
            error = refresh_refused(channel, bearer(token))
            assert error.code() is grpc.StatusCode.UNAUTHENTICATED and "revoked" in error.details()
    after = beijing.metrics.registry.get_sample_value("yidi_tokens_refused_total", {"cause": "revoked"})
    assert after == before + 4


@pytest.mark.parametrize(
    ("changes", "lifetime"),
    [
        pytest.param({"jti": None}, HOUR, id="no jti"),
        pytest.param({}, 365 * DAY, id="a year long"),
        pytest.param({"sub": "operator/000000/root"}, HOUR, id="national operator"),
        pytest.param({"sub": "operator/130000/ops"}, HOUR, id="another province's operator"),
        pytest.param({"sub": f"institution/{HEBEI_HOSPITAL}"}, HOUR, id="another province's hospital"),
    ],
)
def test_the_node_refuses_a_token_its_key_signed_against_the_rules(
    beijing: Node, pki: Pki, changes: dict[str, Any], lifetime: datetime.timedelta
) -> None:
    made = claims(issued=now(), lifetime=lifetime) | changes
    token = craft(pki.node(BEIJING).key, {name: value for name, value in made.items() if value is not None})
    with token_channel(beijing, pki.ca) as channel:
        assert get_settlement(channel, token) is grpc.StatusCode.UNAUTHENTICATED
        assert refresh_refused(channel, bearer(token)).code() is grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("holder", ["institution", "operator"])
def test_a_certificate_caller_has_no_token_to_refresh(beijing: Node, pki: Pki, holder: str) -> None:
    files = pki.institution(HOSPITAL) if holder == "institution" else pki.operator(BEIJING, "ops")
    with mtls(beijing, files) as channel:
        error = refresh_refused(channel, [])
    assert (error.code(), reason(error)) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED_ROLE")
    assert "authenticated by a token" in error.details()
