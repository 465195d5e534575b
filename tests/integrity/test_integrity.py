"""Sealing and checking a business message (yidi_runtime.integrity), node against node, without a network."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from yidi.clearing.v1 import journal_pb2
from yidi.settlement.v1 import insured_settlement_service_pb2 as api
from yidi.type.v1 import visit_pb2
from yidi_core.errors import DomainError
from yidi_runtime import integrity
from yidi_runtime.certs import CertificateAuthority, Pki, init_pki
from yidi_runtime.config import NodeSettings
from yidi_runtime.integrity import (
    DIGEST_ALGORITHM,
    NodeIntegrity,
    Origin,
    Sealed,
    canonical,
    matches,
    node_region,
)

JIAXING, ZHEJIANG, QINGHAI = "330400", "330000", "630000"
ROUTED = Sealed(transient=("route.hops",))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("pki"), nodes=[JIAXING, ZHEJIANG, QINGHAI])


def node(pki: Pki, region: str, registry: CollectorRegistry | None = None) -> NodeIntegrity:
    return NodeIntegrity(NodeSettings(region=region, tls=pki.node(region)), registry or CollectorRegistry())


def insecure(registry: CollectorRegistry | None = None) -> NodeIntegrity:
    return NodeIntegrity(NodeSettings(region=QINGHAI, insecure=True), registry or CollectorRegistry())


def apply_request() -> api.ApplySettlementRequest:
    """What the Jiaxing node sends the Qinghai node: a settlement it made, on its way up the tree."""
    return api.ApplySettlementRequest(
        request_id="H33040200001202612011200000001:apply",
        route={"origin_admdvs": JIAXING, "destination_admdvs": QINGHAI, "hops": [JIAXING]},
        psn_no="630000000000000000000001",
        insutype="390",
        facts=visit_pb2.VisitFacts(med_type="21", mdtrtarea_admvs="330402", fixmedins_code="H33040200001"),
        totals=api.ClassifiedTotals(medfee_sumamt_fen=600_000, inscp_scp_amt_fen=600_000),
        setl_id="330400123456789012345678901234",
    )


def origin_of(request: api.ApplySettlementRequest) -> Origin:
    return Origin(
        node={"route.origin_admdvs": request.route.origin_admdvs, "setl_id": request.setl_id[:6]},
        within={"facts.mdtrtarea_admvs": request.facts.mdtrtarea_admvs},
    )


def refusal(check: Callable[[], None]) -> DomainError:
    with pytest.raises(DomainError) as raised:
        check()
    assert raised.value.reason_code == "SIGNATURE_INVALID"
    assert raised.value.reason.grpc_code == "UNAUTHENTICATED"
    return raised.value


def sealed_by(signer: NodeIntegrity) -> api.ApplySettlementRequest:
    request = apply_request()
    signer.seal(request, ROUTED)
    return request


def test_a_sealed_request_is_accepted_after_every_hop_appended_itself(pki: Pki) -> None:
    request = sealed_by(node(pki, JIAXING))
    seal = request.payload_signature
    assert seal.digest_algorithm == DIGEST_ALGORITHM == "SM3"  # the installed OpenSSL offers SM3
    assert seal.signer_admdvs == JIAXING and len(seal.digest) == 32
    certificate = x509.load_der_x509_certificate(seal.signer_certificate)
    assert node_region(certificate) == JIAXING

    request.route.hops.extend([ZHEJIANG, "000000"])
    node(pki, QINGHAI).verify("ApplySettlement", request, origin_of(request), ROUTED)
    assert matches(request, seal, ROUTED)


def test_every_change_of_the_business_payload_is_refused_as_a_digest_mismatch(pki: Pki) -> None:
    registry = CollectorRegistry()
    receiver = node(pki, QINGHAI, registry)
    for change in (
        lambda r: setattr(r.totals, "medfee_sumamt_fen", 60_000),
        lambda r: setattr(r, "psn_no", "630000000000000000000002"),
        lambda r: setattr(r.route, "destination_admdvs", "630100"),
        lambda r: setattr(r.route, "origin_admdvs", ZHEJIANG),
    ):
        request = sealed_by(node(pki, JIAXING))
        change(request)
        error = refusal(lambda r=request: receiver.verify("ApplySettlement", r, origin_of(r), ROUTED))
        assert error.metadata["cause"] == "digest_mismatch"
        assert error.metadata["field"] == "payload_signature"
        assert error.metadata["signer_admdvs"] == JIAXING
        assert not matches(request, request.payload_signature, ROUTED)
    assert (
        registry.get_sample_value(
            "yidi_integrity_refusals_total", {"method": "ApplySettlement", "cause": "digest_mismatch"}
        )
        == 4
    )


def test_a_recomputed_digest_without_the_key_is_a_bad_signature(pki: Pki) -> None:
    request = sealed_by(node(pki, JIAXING))
    request.totals.medfee_sumamt_fen = 60_000
    algorithm = request.payload_signature.digest_algorithm
    request.payload_signature.digest = integrity.digest(canonical(request, ROUTED), algorithm)
    error = refusal(lambda: node(pki, QINGHAI).verify("ApplySettlement", request, origin_of(request), ROUTED))
    assert error.metadata["cause"] == "bad_signature"


def test_an_unsealed_request_is_refused_by_a_tls_node_and_counted(pki: Pki) -> None:
    registry = CollectorRegistry()
    request = apply_request()
    error = refusal(lambda: node(pki, QINGHAI, registry).verify("ApplySettlement", request, Origin(), ROUTED))
    assert error.metadata == {"cause": "missing", "field": "payload_signature", "method": "ApplySettlement"}
    assert (
        registry.get_sample_value(
            "yidi_integrity_refusals_total", {"method": "ApplySettlement", "cause": "missing"}
        )
        == 1
    )


def test_a_certificate_from_another_ca_is_an_unknown_signer(pki: Pki, tmp_path: Path) -> None:
    stranger = init_pki(tmp_path / "other", nodes=[JIAXING])
    request = apply_request()
    node(stranger, JIAXING).seal(request, ROUTED)
    assert matches(request, request.payload_signature, ROUTED)  # well signed, by a key we do not trust
    error = refusal(lambda: node(pki, QINGHAI).verify("ApplySettlement", request, origin_of(request), ROUTED))
    assert error.metadata["cause"] == "unknown_signer"


def test_a_seal_claiming_another_signer_than_its_certificate_is_refused(pki: Pki) -> None:
    request = sealed_by(node(pki, ZHEJIANG))
    request.payload_signature.signer_admdvs = JIAXING
    error = refusal(lambda: node(pki, QINGHAI).verify("ApplySettlement", request, origin_of(request), ROUTED))
    assert error.metadata["cause"] == "unknown_signer"
    assert "names node 330000" in error.message


def test_an_expired_certificate_is_an_unknown_signer(pki: Pki) -> None:
    ca = CertificateAuthority.load(pki)
    files = pki.node(JIAXING)
    current = x509.load_pem_x509_certificate(files.cert.read_bytes())
    key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
    now = datetime.datetime.now(datetime.UTC)
    expired = (
        x509.CertificateBuilder()
        .subject_name(current.subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30))
        .not_valid_after(now - datetime.timedelta(days=1))
        .add_extension(current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, False)
        .sign(ca.key, hashes.SHA256())
    )
    request = sealed_by(node(pki, JIAXING))
    request.payload_signature.signer_certificate = expired.public_bytes(serialization.Encoding.DER)
    assert matches(request, request.payload_signature, ROUTED)
    error = refusal(lambda: node(pki, QINGHAI).verify("ApplySettlement", request, origin_of(request), ROUTED))
    assert error.metadata["cause"] == "unknown_signer"
    assert "not valid now" in error.message


def test_a_relay_that_seals_as_itself_is_not_the_origin(pki: Pki) -> None:
    """Zhejiang relays Jiaxing's settlements; its own valid seal does not make it the node that made them."""
    request = sealed_by(node(pki, ZHEJIANG))
    error = refusal(lambda: node(pki, QINGHAI).verify("ApplySettlement", request, origin_of(request), ROUTED))
    assert error.metadata["cause"] == "not_origin"
    assert error.metadata["signer_admdvs"] == ZHEJIANG

    outside = Origin(within={"facts.mdtrtarea_admvs": "110105"})
    request = sealed_by(node(pki, JIAXING))
    error = refusal(lambda: node(pki, QINGHAI).verify("ApplySettlement", request, outside, ROUTED))
    assert error.metadata["cause"] == "not_origin"


def test_an_unsupported_digest_algorithm_is_named(pki: Pki) -> None:
    request = sealed_by(node(pki, JIAXING))
    request.payload_signature.digest_algorithm = "MD5"
    error = refusal(lambda: node(pki, QINGHAI).verify("ApplySettlement", request, origin_of(request), ROUTED))
    assert error.metadata["cause"] == "unsupported_digest"


def test_sha256_seals_verify_where_sm3_is_missing(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(integrity, "DIGEST_ALGORITHM", integrity.SHA256)
    request = sealed_by(node(pki, JIAXING))
    assert request.payload_signature.digest_algorithm == "SHA-256"
    node(pki, QINGHAI).verify("ApplySettlement", request, origin_of(request), ROUTED)


def test_a_pem_signer_certificate_is_accepted(pki: Pki) -> None:
    request = sealed_by(node(pki, JIAXING))
    request.payload_signature.signer_certificate = pki.node(JIAXING).cert.read_bytes()
    node(pki, QINGHAI).verify("ApplySettlement", request, origin_of(request), ROUTED)


def test_output_only_fields_are_left_out_so_a_listed_entry_still_verifies(pki: Pki) -> None:
    entry = journal_pb2.JournalEntry(
        msgid="m1", setl_id="330400123", mdtrtarea_admvs="330402", fund_pay_sumamt_fen=9
    )
    node(pki, JIAXING).seal(entry)
    entry.cleared_period = "2026-11"
    entry.record_time.GetCurrentTime()
    node(pki, QINGHAI).verify("AppendJournalEntries", entry, Origin(), where="entries[0].")
    entry.fund_pay_sumamt_fen = 10
    error = refusal(
        lambda: node(pki, QINGHAI).verify("AppendJournalEntries", entry, Origin(), where="entries[0].")
    )
    assert error.metadata["field"] == "entries[0].payload_signature"


def test_an_insecure_node_seals_nothing_accepts_unsealed_and_says_so_once() -> None:
    development = insecure()
    request = apply_request()
    development.seal(request, ROUTED)
    assert not request.HasField("payload_signature") and not development.sealing
    with capture_logs() as logs:
        development.verify("ApplySettlement", request, Origin(), ROUTED)
        development.verify("ApplySettlement", request, Origin(), ROUTED)
    assert [entry["log_level"] for entry in logs] == ["warning"]
    assert "INSECURE" in logs[0]["event"]


def test_the_refusal_counter_is_registered_once_per_node_registry(pki: Pki) -> None:
    registry = CollectorRegistry()
    first, second = node(pki, QINGHAI, registry), insecure(registry)  # two services of one node
    assert first.sealing and not second.sealing
    assert integrity.refusals_counter(registry) is integrity.refusals_counter(registry)


def test_a_node_certificate_must_name_a_node(pki: Pki, tmp_path: Path) -> None:
    files = init_pki(tmp_path / "his", institutions=["H33040200001"]).institution("H33040200001")
    with pytest.raises(ValueError, match="names no yidi://node"):
        NodeIntegrity(NodeSettings(region=JIAXING, tls=files), CollectorRegistry())
