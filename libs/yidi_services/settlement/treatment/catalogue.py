"""Classifying fee lines with the treatment place's catalogue (就医地目录), through the core.

The catalogue in force is looked up at the treatment province for the visit's service
date; the core's ``classify_bill`` splits each line; the result travels as ``ItemResult``
messages with the catalogue version that decided them, and the insured node applies its
policy to exactly those lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from yidi.catalogue.v1 import catalogue_pb2
from yidi.settlement.v1 import insured_settlement_service_pb2 as insured_api
from yidi.type.v1 import fee_item_pb2, visit_pb2
from yidi_core.catalogue import CatalogueEntry, FeeItem, ItemClass, Restriction, line_amount
from yidi_core.codes import check_item_code
from yidi_core.errors import DomainError, FieldViolation, combine, error_class, invalid
from yidi_core.money import check_fen, from_fen, parse_decimal, to_fen
from yidi_core.settlement import Visit, classify_bill
from yidi_runtime.wire import required_day
from yidi_services.results import item_result_message
from yidi_services.settlement.treatment.checks import Problems
from yidi_services.settlement.treatment.peers import TreatmentPeers

MAX_LINES = 5000
"""Lines per upload (2204 / 2301), and codes per catalogue lookup."""
VERSION_SEPARATOR = "+"
_CLASSES = {level.chrgitm_lv: level for level in ItemClass}
_CORE_FIELDS = {"sn": "feedetl_sn", "qty": "cnt", "price": "pric", "amount": "det_item_fee_sumamt_fen"}


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
    problems = Problems()
    items = [
        problems.check(lambda m=m, i=i: _fee_item(m, f"{field_path}[{i}]")) for i, m in enumerate(messages)
    ]
    seen: set[str] = set()
    for index, item in enumerate(items):
        if item is None:
            continue
        if item.sn in seen:
            problems.errors.append(
                invalid("INVALID_ARGUMENT", f"{field_path}[{index}].feedetl_sn", f"serial {item.sn} repeats")
            )
        seen.add(item.sn)
    problems.raise_any()
    return [item for item in items if item is not None]


def _fee_item(message: fee_item_pb2.FeeItem, where: str) -> FeeItem:
    problems = Problems()
    sn = message.feedetl_sn.strip()
    if not sn or len(sn) > 64:
        problems.errors.append(
            invalid("INVALID_ARGUMENT", f"{where}.feedetl_sn", "is required, at most 64 characters")
        )
    code = problems.check(lambda: check_item_code(message.med_list_codg, f"{where}.med_list_codg")[0])
    qty = problems.check(lambda: _positive(message.cnt, f"{where}.cnt", 4))
    price = problems.check(lambda: _positive(message.pric, f"{where}.pric", 6))
    problems.check(lambda: check_fen(message.det_item_fee_sumamt_fen, f"{where}.det_item_fee_sumamt_fen"))
    problems.raise_any()
    assert code is not None and qty is not None and price is not None
    amount = from_fen(message.det_item_fee_sumamt_fen) if message.det_item_fee_sumamt_fen else None
    return FeeItem(sn, code, qty, price, amount)


def _positive(text: str, where: str, places: int) -> Decimal:
    value = parse_decimal(text, where, max_places=places)
    if value <= 0:
        raise invalid("INVALID_ARGUMENT", where, f"must be positive, got {text!r}")
    return value


def catalogue_entry(item: catalogue_pb2.CatalogueItem) -> CatalogueEntry:
    """A catalogue item in force as the core classifies with it."""
    restriction = (
        Restriction(tuple(item.restriction.med_types), tuple(item.restriction.diagnosis_prefixes))
        if item.HasField("restriction")
        else None
    )
    return CatalogueEntry(
        code=item.code,
        name=item.name,
        item_class=_CLASSES[item.chrgitm_lv],
        selfpay_ratio=Decimal(item.selfpay_prop) if item.selfpay_prop else Decimal(0),
        price_ceiling=Decimal(item.pric_uplmt_amt) if item.pric_uplmt_amt else None,
        restriction=restriction,
    )


def catalogue_version(overlay_version_id: str, base_version_id: str) -> str:
    """The versions that classified a bill, overlay first (as the catalogue's own estimates name them)."""
    return VERSION_SEPARATOR.join(version for version in (overlay_version_id, base_version_id) if version)


def core_visit(facts: visit_pb2.VisitFacts) -> Visit:
    """The visit facts the core classifies by (the stored facts were checked at registration)."""
    return Visit(
        med_type=facts.med_type,
        service_date=required_day(facts.service_date, "facts.service_date"),
        institution_level=facts.institution_level,
        diagnoses=tuple(facts.diagnoses),
        chronic_disease=facts.chronic_disease or None,
        emergency=facts.emergency,
    )


def classify(peers: TreatmentPeers, facts: visit_pb2.VisitFacts, items: Sequence[FeeItem]) -> Classified:
    """Split every line by the catalogue in force for the visit's region and service date (core ``classify_bill``)."""
    visit = core_visit(facts)
    codes = list(dict.fromkeys(item.code for item in items))
    entries: dict[str, CatalogueEntry] = {}
    version = ""
    for start in range(0, len(codes), MAX_LINES):
        answer = peers.lookup_items(
            facts.mdtrtarea_admvs, codes[start : start + MAX_LINES], visit.service_date
        )
        entries.update((item.code, catalogue_entry(item)) for item in answer.items)
        version = catalogue_version(answer.overlay_version_id, answer.base_version_id)
    try:
        results = classify_bill(visit, entries, items)
    except DomainError as error:
        raise proto_paths(error) from None
    return Classified(tuple(item_result_message(result) for result in results), version)


def line_amounts_fen(items: Sequence[FeeItem], field_path: str = "items") -> list[int]:
    """Each line's amount in fen: as given (within one fen of cnt × pric), else computed."""
    problems = Problems()
    amounts = [
        problems.check(lambda item=item, i=i: to_fen(line_amount(item, i))) for i, item in enumerate(items)
    ]
    error = combine(problems.errors)
    if error is not None:
        raise proto_paths(error, field_path)
    return [amount for amount in amounts if amount is not None]


def proto_paths(error: DomainError, field_path: str = "items") -> DomainError:
    """A core refusal naming ``items[2].qty`` names the proto's ``<field_path>[2].cnt``."""
    violations = []
    for violation in error.violations:
        head, _, last = violation.field.rpartition(".")
        renamed = f"{head}.{_CORE_FIELDS[last]}" if head and last in _CORE_FIELDS else violation.field
        if renamed.startswith("items"):
            renamed = field_path + renamed.removeprefix("items")
        violations.append(FieldViolation(renamed, violation.description))
    message = "; ".join(f"{v.field}: {v.description}" for v in violations) or error.message
    return error_class(error.reason_code)(error.reason_code, message, tuple(violations), dict(error.metadata))
