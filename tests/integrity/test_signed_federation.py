"""Seals across hops on a mutual-TLS federation: Jiaxing → Zhejiang → national → Qinghai.

The Qinghai resident discharged in Jiaxing (the demo's second story) settles over four hops;
the national journal and the Qinghai node keep the Jiaxing node's seal. Then the Qinghai
node's parent (the national node, which relays every such settlement) sends ApplySettlement
itself, as a relay could: only what the Jiaxing node sealed, unchanged, is applied.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from yidi.clearing.v1 import clearing_service_pb2, clearing_service_pb2_grpc, journal_pb2
from yidi.settlement.v1 import insured_settlement_service_pb2 as api
from yidi.settlement.v1 import insured_settlement_service_pb2_grpc as api_grpc
from yidi.type.v1 import fee_item_pb2
from yidi.type.v1.vouch_pb2 import Vouch
from yidi_harness.federation import (
    DEMO_TOPOLOGY,
    Federation,
    Topology,
    init_demo_pki,
    load_sample_data,
    start_federation,
)
from yidi_harness.polling import eventually
from yidi_harness.stories import STORIES, Stage, StoryResult, journal_entries
from yidi_runtime.certs import Pki, init_pki
from yidi_runtime.config import NodeSettings
from yidi_runtime.identity import CallerRole, Principal, parse_subject
from yidi_runtime.integrity import RECEIPT, NodeIntegrity, Sealed, matches, node_region
from yidi_runtime.peers import message_id
from yidi_runtime.vouches import VOUCH_HEADER, Vouches, request_digest
from yidi_runtime.wire import timestamp_message
from yidi_services.settlement.insured.models import ApplicationRow
from yidi_services.settlement.models import RequestRecord
from yidi_services.settlement.treatment.models import ReceiptRow
from yidi_testing import error_details

NATIONAL, ZHEJIANG, JIAXING, QINGHAI = "000000", "330000", "330400", "630000"
TOPOLOGY = Topology(
    tuple(spec for spec in DEMO_TOPOLOGY.nodes if spec.region in (NATIONAL, ZHEJIANG, JIAXING, QINGHAI))
)
QINGHAI_IN_JIAXING = next(story for story in STORIES if story.fixmedins_code == "H33040200001")
ROUTED = Sealed(transient=("route.hops",))
DEADLINE_S = 20.0
_serials = itertools.count(1)


def as_node(region: str) -> Principal:
    return Principal(CallerRole.NODE, region, region)


def sealer(pki: Pki, region: str) -> NodeIntegrity:
    """Seals as the node of ``region`` does (its certificate's key)."""
    return NodeIntegrity(NodeSettings(region=region, tls=pki.node(region)), CollectorRegistry())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_demo_pki(tmp_path_factory.mktemp("pki"), TOPOLOGY)


def settle_qinghai_in_jiaxing(federation: Federation) -> StoryResult:
    load_sample_data(federation)
    result = QINGHAI_IN_JIAXING.play(Stage(federation, datetime.now(UTC)))
    assert result.ok, (result.failure, [text for text, held in result.expectations if not held])
    return result


def relayed_entry(entry: journal_pb2.JournalEntry, federation: Federation) -> Callable[..., object]:
    """AppendJournalEntries of one entry from the Jiaxing node, relayed by Zhejiang to the national node."""
    stub = clearing_service_pb2_grpc.ClearingServiceStub(federation.channel(NATIONAL, as_node(ZHEJIANG)))
    return lambda: stub.AppendJournalEntries(
        clearing_service_pb2.AppendJournalEntriesRequest(
            request_id=message_id(JIAXING), source_admdvs=JIAXING, entries=[entry]
        ),
        timeout=DEADLINE_S,
    )


def refused(call: Callable[[], object]) -> dict[str, str]:
    """The SIGNATURE_INVALID refusal's metadata."""
    with pytest.raises(grpc.RpcError) as raised:
        call()
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    info = error_details(raised.value)["ErrorInfo"]
    assert info.reason == "SIGNATURE_INVALID"
    return dict(info.metadata)


def test_the_journal_and_the_insured_node_keep_the_treatment_nodes_seal(
    tmp_path: Path, pki: Pki, database_factory: Callable[[], str | None]
) -> None:
    with start_federation(TOPOLOGY, tmp_path, database_factory, pki=pki) as federation:
        result = settle_qinghai_in_jiaxing(federation)
        assert result.settlement is not None
        [entry] = result.journal_entries
        seal = entry.payload_signature
        assert (seal.signer_admdvs, seal.digest_algorithm, len(seal.digest)) == (JIAXING, "SM3", 32)
        certificate = x509.load_der_x509_certificate(seal.signer_certificate)
        certificate.verify_directly_issued_by(x509.load_pem_x509_certificate(pki.ca.read_bytes()))
        assert node_region(certificate) == JIAXING
        assert entry.HasField("record_time")
        assert matches(entry, seal)  # as listed, with the national node's record_time

        insured = next(s for s in federation.nodes[QINGHAI].services if s.group.name == "settlement")
        with insured.database.unit_of_work() as uow:
            row = uow.session.scalars(
                select(ApplicationRow).where(ApplicationRow.setl_id == result.settlement.setl_id)
            ).one()
            kept = (row.signer_admdvs, row.digest_algorithm, row.signer_certificate, len(row.signature) > 0)
        assert kept == (JIAXING, "SM3", seal.signer_certificate, True)

        tampered = journal_pb2.JournalEntry()
        tampered.CopyFrom(entry)
        tampered.msgid, tampered.setl_id = entry.msgid + "X", entry.setl_id[:-1] + "9"
        assert refused(relayed_entry(tampered, federation))["cause"] == "digest_mismatch"
        tampered.ClearField("payload_signature")
        assert refused(relayed_entry(tampered, federation))["cause"] == "missing"
        assert journal_entries(federation, tampered.msgid, QINGHAI, timeout_s=0) == []

        repeated = relayed_entry(entry, federation)()  # as listed: still verifies, a repeat
        assert (repeated.appended_count, repeated.duplicate_count) == (0, 1)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Played:
    """A federation after the story, and the Qinghai node as its parent (the national node) calls it."""

    federation: Federation
    pki: Pki
    result: StoryResult
    insured: api_grpc.InsuredSettlementServiceStub

    def request(self) -> api.ApplySettlementRequest:
        """A new bill for the story's visit, as the Jiaxing node sends it (unsealed, its route travelled)."""
        assert self.result.person is not None and self.result.visit is not None
        line = fee_item_pb2.ItemResult(
            feedetl_sn="1",
            med_list_codg="001102000010000",
            det_item_fee_sumamt_fen=6000,
            chrgitm_lv="01",
            inscp_scp_amt_fen=6000,
        )
        serial = next(_serials)
        return api.ApplySettlementRequest(
            request_id=f"H33040200001/H33040200001{datetime.now(UTC):%Y%m%d%H%M%S}{serial:04d}:apply",
            route={
                "origin_admdvs": JIAXING,
                "destination_admdvs": QINGHAI,
                "hops": [JIAXING, ZHEJIANG, NATIONAL],
            },
            psn_no=self.result.person.psn_no,
            insutype=self.result.person.insutype,
            facts=self.result.visit.facts,
            items=[line],
            totals=api.ClassifiedTotals(medfee_sumamt_fen=6000, inscp_scp_amt_fen=6000),
            setl_id=f"{JIAXING}{serial:024d}",
        )

    def sealed(self, region: str = JIAXING) -> api.ApplySettlementRequest:
        request = self.request()
        sealer(self.pki, region).seal(request, ROUTED)
        return request

    def apply(self, request: api.ApplySettlementRequest) -> api.ApplySettlementResponse:
        return self.insured.ApplySettlement(request, timeout=DEADLINE_S)

    def applied_setl_ids(self) -> set[str]:
        """The settlement ids the Qinghai node holds applications of."""
        now = datetime.now(UTC)
        records = self.insured.ListSettlementRecords(
            api.ListSettlementRecordsRequest(
                route={"origin_admdvs": NATIONAL, "destination_admdvs": QINGHAI},
                side=api.RECORD_SIDE_INSURED,
                start_time=timestamp_message(now - timedelta(days=1)),
                end_time=timestamp_message(now + timedelta(days=1)),
            ),
            timeout=DEADLINE_S,
        ).records
        return {record.setl_id for record in records}

    def refusals(self, cause: str) -> float:
        registry = self.federation.nodes[QINGHAI].metrics.registry
        found = registry.get_sample_value(
            "yidi_integrity_refusals_total", {"method": "ApplySettlement", "cause": cause}
        )
        return found or 0.0


@pytest.fixture(scope="module")
def played(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Played]:
    with start_federation(TOPOLOGY, tmp_path_factory.mktemp("federation"), pki=pki) as federation:
        result = settle_qinghai_in_jiaxing(federation)
        channel = federation.channel(QINGHAI, as_node(NATIONAL))
        yield Played(federation, pki, result, api_grpc.InsuredSettlementServiceStub(channel))


def test_a_retry_sealed_again_answers_the_original_result(played: Played) -> None:
    first = played.sealed()
    answer = played.apply(first)
    retry = played.request()
    retry.request_id, retry.setl_id = first.request_id, first.setl_id
    sealer(played.pki, JIAXING).seal(retry, ROUTED)
    assert retry.payload_signature.signature != first.payload_signature.signature  # ECDSA draws anew
    assert played.apply(retry) == answer


def test_a_tampered_forward_is_refused_and_leaves_no_trace(played: Played) -> None:
    request = played.sealed()
    honest = api.ApplySettlementRequest()
    honest.CopyFrom(request)
    request.items[0].det_item_fee_sumamt_fen = request.items[0].inscp_scp_amt_fen = 600
    request.totals.medfee_sumamt_fen = request.totals.inscp_scp_amt_fen = 600
    before = played.refusals("digest_mismatch")

    metadata = refused(lambda: played.apply(request))
    assert metadata == {
        "cause": "digest_mismatch",
        "field": "payload_signature",
        "method": "ApplySettlement",
        "signer_admdvs": JIAXING,
    }
    assert request.setl_id not in played.applied_setl_ids()
    assert played.refusals("digest_mismatch") == before + 1
    played.apply(honest)  # the refusal recorded nothing under its request id
    assert request.setl_id in played.applied_setl_ids()


def test_an_unsealed_forward_is_refused(played: Played) -> None:
    request = played.request()
    assert refused(lambda: played.apply(request))["cause"] == "missing"
    assert request.setl_id not in played.applied_setl_ids()


def test_a_seal_from_another_federations_ca_is_refused(played: Played, tmp_path: Path) -> None:
    request = played.request()
    sealer(init_pki(tmp_path / "elsewhere", nodes=[JIAXING]), JIAXING).seal(request, ROUTED)
    assert refused(lambda: played.apply(request))["cause"] == "unknown_signer"
    assert request.setl_id not in played.applied_setl_ids()


@pytest.mark.parametrize("relay", [NATIONAL, ZHEJIANG])
def test_a_relay_sealing_a_settlement_it_did_not_make_is_refused(played: Played, relay: str) -> None:
    request = played.sealed(relay)
    metadata = refused(lambda: played.apply(request))
    assert (metadata["cause"], metadata["signer_admdvs"]) == ("not_origin", relay)
    assert request.setl_id not in played.applied_setl_ids()


def settlement_db(played: Played, region: str) -> object:
    return next(s.database for s in played.federation.nodes[region].services if s.group.name == "settlement")


def test_receipts_of_the_insured_node_are_kept_on_both_sides(played: Played) -> None:
    """The Qinghai node answered the Jiaxing node's sealed ApplySettlement and ConfirmSettlement with
    receipts it signed: Jiaxing keeps them with its record, Qinghai in its request log."""
    assert played.result.settlement is not None
    msgid = played.result.settlement.medins_setl_id
    wanted = {
        ("ApplySettlement", f"H33040200001/{msgid}:apply"),
        ("ConfirmSettlement", f"H33040200001/{msgid}:confirm"),
    }
    jiaxing = settlement_db(played, JIAXING)

    def receipts() -> dict[tuple[str, str], ReceiptRow]:
        with jiaxing.unit_of_work() as uow:  # type: ignore[attr-defined]
            kept = {(row.method, row.request_id): row for row in uow.session.scalars(select(ReceiptRow))}
            uow.session.expunge_all()
        assert wanted <= kept.keys(), sorted(kept)
        return kept

    kept = eventually(receipts, within_s=DEADLINE_S, what="Jiaxing keeps both receipts")
    answers = {
        "ApplySettlement": api.ApplySettlementResponse,
        "ConfirmSettlement": api.ConfirmSettlementResponse,
    }
    for method, request_id in wanted:
        row = kept[method, request_id]
        answer = answers[method].FromString(row.answer)
        assert row.signer_admdvs == answer.receipt.signer_admdvs == QINGHAI
        assert len(answer.request_digest) == 32 and matches(answer, answer.receipt, RECEIPT)
        tampered = answers[method]()
        tampered.CopyFrom(answer)
        tampered.request_digest = b"\0" * 32
        assert not matches(tampered, answer.receipt, RECEIPT)
    with settlement_db(played, QINGHAI).unit_of_work() as uow:  # type: ignore[attr-defined]
        logged = uow.session.scalars(
            select(RequestRecord).where(RequestRecord.request_id == f"H33040200001/{msgid}:apply")
        ).one()
        assert logged.owner == f"node/{JIAXING}"
        stored = api.ApplySettlementResponse.FromString(logged.response)
    assert (
        stored.receipt
        == api.ApplySettlementResponse.FromString(
            kept["ApplySettlement", f"H33040200001/{msgid}:apply"].answer
        ).receipt
    )


def test_only_the_node_that_applied_a_settlement_confirms_or_reverts_it(played: Played) -> None:
    applied = played.sealed()
    played.apply(applied)
    for request in (
        api.ConfirmSettlementRequest(
            request_id=message_id(NATIONAL), original_request_id=applied.request_id, setl_id=applied.setl_id
        ),
        api.RevertSettlementRequest(request_id=message_id(NATIONAL), original_request_id=applied.request_id),
    ):
        request.route.origin_admdvs, request.route.destination_admdvs = JIAXING, QINGHAI
        sealer(played.pki, NATIONAL).seal(request, ROUTED)  # the relay seals what it did not make
        method = getattr(played.insured, request.DESCRIPTOR.name.removesuffix("Request"))
        assert refused(lambda r=request, m=method: m(r, timeout=DEADLINE_S))["cause"] == "not_origin"
        request.route.origin_admdvs = NATIONAL  # its own name: sealed rightly, but not its application
        sealer(played.pki, NATIONAL).seal(request, ROUTED)
        with pytest.raises(grpc.RpcError) as raised:
            method(request, timeout=DEADLINE_S)
        assert error_details(raised.value)["ErrorInfo"].reason == "PERMISSION_DENIED_REGION"
    assert applied.setl_id in played.applied_setl_ids()


def vouched(played: Played, region: str, principal: str, request: object) -> tuple[tuple[str, bytes]]:
    """The metadata of a call carrying the node of ``region``'s vouch for ``principal``."""
    settings = NodeSettings(region=region, tls=played.pki.node(region))
    vouches = Vouches(settings, sealer(played.pki, region))
    subject = parse_subject(principal)
    assert subject is not None
    return ((VOUCH_HEADER, vouches.issue(subject, request)),)  # type: ignore[arg-type]


def test_a_vouch_is_checked_at_every_hop(played: Played, tmp_path: Path) -> None:
    """The national node relays an operator's read: the Qinghai node checks who vouched, for whom, for what."""
    assert played.result.person is not None
    request = api.GetAccumulatorsRequest(
        route={"origin_admdvs": NATIONAL, "destination_admdvs": QINGHAI},
        psn_no=played.result.person.psn_no,
        year=2026,
    )
    read = played.insured.GetAccumulators
    read(request, metadata=vouched(played, NATIONAL, "operator/630000/auditor", request), timeout=DEADLINE_S)

    def reason(metadata: tuple[tuple[str, bytes]], call: object = request) -> tuple[str, str]:
        with pytest.raises(grpc.RpcError) as raised:
            read(call, metadata=metadata, timeout=DEADLINE_S)
        info = error_details(raised.value)["ErrorInfo"]
        return info.reason, info.metadata.get("cause", "")

    # A vouch must come the way its node lies: this node's own, back through its parent, is a loop.
    assert (
        reason(vouched(played, QINGHAI, "operator/630000/auditor", request))[0] == "PERMISSION_DENIED_REGION"
    )
    # A node's key cannot name an operator beyond its own region, nor another node.
    assert (
        reason(vouched(played, JIAXING, "operator/630000/auditor", request))[0] == "PERMISSION_DENIED_REGION"
    )
    assert reason(vouched(played, JIAXING, f"node/{NATIONAL}", request))[0] == "PERMISSION_DENIED_REGION"
    # An operator of another region, vouched rightly, is refused here as the operator.
    assert (
        reason(vouched(played, NATIONAL, "operator/330000/auditor", request))[0] == "PERMISSION_DENIED_REGION"
    )
    # A vouch given for another request, or not sealed by a node of this federation, is no vouch.
    other = api.GetAccumulatorsRequest()
    other.CopyFrom(request)
    other.year = 2025
    assert reason(vouched(played, NATIONAL, "operator/630000/auditor", other)) == (
        "SIGNATURE_INVALID",
        "request",
    )
    foreign = init_pki(tmp_path / "elsewhere", nodes=[NATIONAL])
    forged = Vouches(NodeSettings(region=NATIONAL, tls=foreign.node(NATIONAL)), sealer(foreign, NATIONAL))
    metadata = ((VOUCH_HEADER, forged.issue(parse_subject("operator/630000/auditor"), request)),)  # type: ignore[arg-type]
    assert reason(metadata) == ("SIGNATURE_INVALID", "unknown_signer")
    unsealed = Vouch(
        subject="operator/630000/auditor",
        request_type=request.DESCRIPTOR.full_name,
        request_digest=request_digest(request),
        expire_time=timestamp_message(datetime.now(UTC) + timedelta(minutes=1)),
    )
    assert reason(((VOUCH_HEADER, unsealed.SerializeToString()),)) == ("SIGNATURE_INVALID", "missing")
