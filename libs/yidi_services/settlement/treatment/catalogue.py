"""Classifying fee lines with the treatment place's catalogue (就医地目录), through the core.

The catalogue in force is looked up at the treatment province for the visit's service
date; the core's ``classify_bill`` splits each line; the result travels as ``ItemResult``
messages with the catalogue version that decided them, and the insured node applies its
policy to exactly those lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from yidi.settlement.v1 import insured_settlement_service_pb2 as insured_api
from yidi.type.v1 import fee_item_pb2, visit_pb2
from yidi_codec.catalogue import entry_from_proto
from yidi_codec.fee_items import fee_items_from_proto
from yidi_codec.fields import Violations, proto_paths
from yidi_codec.results import item_result_to_proto
from yidi_codec.visits import visit_from_proto
from yidi_core.catalogue import CatalogueEntry, FeeItem, line_amount
from yidi_core.errors import DomainError, invalid
from yidi_core.money import to_fen
from yidi_core.settlement import classify_bill
from yidi_services.settlement.treatment.peers import TreatmentPeers

MAX_LINES = 5000
"""Lines per upload (2204 / 2301), and codes per catalogue lookup."""
VERSION_SEPARATOR = "+"


@dataclass(frozen=True)
class Classified:
    """A bill split by the catalogue: one ItemResult per line, in order, and the version used."""

    results: tuple[fee_item_pb2.ItemResult, ...]
    catalogue_version: str

    def totals(self) -> insured_api.ClassifiedTotals:
        """The bill's totals as the insured node checks them against the lines."""
        totals = insured_api.ClassifiedTotals()
        for line in self.results:
            totals.medfee_sumamt_fen += line.det_item_fee_sumamt_fen
            totals.fulamt_ownpay_amt_fen += line.fulamt_ownpay_amt_fen
            totals.overlmt_selfpay_fen += line.overlmt_amt_fen
            totals.preselfpay_amt_fen += line.preselfpay_amt_fen
            totals.inscp_scp_amt_fen += line.inscp_scp_amt_fen
        return totals


def fee_items(
    messages: Sequence[fee_item_pb2.FeeItem], field_path: str = "items", *, one_call: bool = True
) -> list[FeeItem]:
    """Lines as the core's values; every bad field named with the proto's path.

    ``one_call``: the lines of one request, at most :data:`MAX_LINES` (a visit's bill, made of
    several uploads, may hold more).
    """
    if not messages:
        raise invalid("INVALID_ARGUMENT", field_path, "name at least one fee line")
    if one_call and len(messages) > MAX_LINES:
        raise invalid(
            "INVALID_ARGUMENT", field_path, f"at most {MAX_LINES} lines per call, got {len(messages)}"
        )
    return fee_items_from_proto(messages, field_path)


def catalogue_version(overlay_version_id: str, base_version_id: str) -> str:
    """The versions that classified a bill, overlay first (as the catalogue's own estimates name them)."""
    return VERSION_SEPARATOR.join(version for version in (overlay_version_id, base_version_id) if version)


def classify(peers: TreatmentPeers, facts: visit_pb2.VisitFacts, items: Sequence[FeeItem]) -> Classified:
    """Split every line by the catalogue in force for the visit's region and service date (core ``classify_bill``)."""
    visit = visit_from_proto(facts, checked=False)  # stored facts, checked at registration
    codes = list(dict.fromkeys(item.code for item in items))
    entries: dict[str, CatalogueEntry] = {}
    version = ""
    for start in range(0, len(codes), MAX_LINES):
        answer = peers.lookup_items(
            facts.mdtrtarea_admvs, codes[start : start + MAX_LINES], visit.service_date
        )
        entries.update((item.code, entry_from_proto(item)) for item in answer.items)
        version = catalogue_version(answer.overlay_version_id, answer.base_version_id)
    try:
        results = classify_bill(visit, entries, items)
    except DomainError as error:
        raise proto_paths(error) from None
    return Classified(tuple(item_result_to_proto(result) for result in results), version)


def line_amounts_fen(items: Sequence[FeeItem], field_path: str = "items") -> list[int]:
    """Each line's amount in fen: as given (within one fen of cnt × pric), else computed."""
    violations = Violations()
    amounts = [
        violations.check(lambda item=item, i=i: to_fen(line_amount(item, i))) for i, item in enumerate(items)
    ]
    error = violations.combined()
    if error is not None:
        raise proto_paths(error, field_path)
    return [amount for amount in amounts if amount is not None]
