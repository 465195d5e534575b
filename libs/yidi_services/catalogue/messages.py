"""Proto ↔ plain values for the catalogue service: dates, items, versions, policies, estimate input.

Field paths in refusals are the proto's (``items[2].cnt``, ``visit.service_date``), so a
core refusal about ``items[2].qty`` is renamed on its way out.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from yidi.catalogue.v1 import catalogue_pb2, policy_pb2, policy_service_pb2
from yidi.type.v1 import fee_item_pb2, filing_category_pb2, visit_pb2
from yidi_core.accumulators import Accumulators
from yidi_core.case_format import parse_visit
from yidi_core.catalogue import CatalogueEntry, FeeItem
from yidi_core.codes import ItemKind, check_item_code, check_region
from yidi_core.dictionaries import psn_type_group
from yidi_core.errors import DomainError, FieldViolation, combine, error_class, invalid
from yidi_core.money import ZERO, format_decimal, format_money, from_fen, parse_decimal, to_fen
from yidi_core.policy import DeductibleScope
from yidi_core.settlement import Person
from yidi_runtime.wire import date_message, timestamp_message
from yidi_services.catalogue.catalogues import CatalogueVersion, Found, Layer
from yidi_services.catalogue.estimate import EstimateCommand
from yidi_services.catalogue.items import CLASS_BY_LEVEL, CatalogueRow
from yidi_services.catalogue.policies import PolicyVersion, check_insured_region, check_insutype

T = TypeVar("T")
_LAYERS = {
    catalogue_pb2.CATALOGUE_LAYER_NATIONAL_BASE: Layer.NATIONAL_BASE,
    catalogue_pb2.CATALOGUE_LAYER_PROVINCIAL_OVERLAY: Layer.PROVINCIAL_OVERLAY,
}
_LAYER_MESSAGES = {layer: number for number, layer in _LAYERS.items()}
_KINDS = {
    "drug": catalogue_pb2.ITEM_KIND_DRUG,
    "service": catalogue_pb2.ITEM_KIND_SERVICE,
    "consumable": catalogue_pb2.ITEM_KIND_CONSUMABLE,
}
_KIND_NAMES = {number: ItemKind(name) for name, number in _KINDS.items()}
_SCOPES = {
    DeductibleScope.PER_VISIT: policy_pb2.DEDUCTIBLE_SCOPE_PER_VISIT,
    DeductibleScope.ANNUAL: policy_pb2.DEDUCTIBLE_SCOPE_ANNUAL,
}
_SCOPE_NAMES = {number: scope.value for scope, number in _SCOPES.items()}
_CATEGORY_PREFIX = "FILING_CATEGORY_"
# Core field paths of a bill → the proto's.
_RENAMES = (
    (re.compile(r"^items\[(\d+)\]\.sn$"), r"items[\1].feedetl_sn"),
    (re.compile(r"^items\[(\d+)\]\.qty$"), r"items[\1].cnt"),
    (re.compile(r"^items\[(\d+)\]\.price$"), r"items[\1].pric"),
    (re.compile(r"^items\[(\d+)\]\.amount$"), r"items[\1].det_item_fee_sumamt_fen"),
    (re.compile(r"^person\.account_balance$"), "account_balance_fen"),
    (re.compile(r"^accumulators\.(\w+)\.(.+)$"), r"accumulators.\1_fen[\2]"),
)


def layer_of(number: int) -> Layer | None:
    """The layer a request names (None when unspecified)."""
    return _LAYERS.get(number)  # type: ignore[call-overload]


def version_message(version: CatalogueVersion) -> catalogue_pb2.CatalogueVersion:
    """A catalogue version for the wire."""
    return catalogue_pb2.CatalogueVersion(
        version_id=version.version_id,
        admdvs=version.admdvs,
        layer=_LAYER_MESSAGES[version.layer],
        effective_date=date_message(version.effective_date),
        item_count=version.item_count,
        import_time=timestamp_message(version.import_time),
        content_sha256=version.content_sha256,
    )


def item_message(found: Found) -> catalogue_pb2.CatalogueItem:
    """A catalogue row in force, with where it came from."""
    row = found.row
    restriction = (
        catalogue_pb2.ItemRestriction(med_types=row.med_types, diagnosis_prefixes=row.diagnosis_prefixes)
        if row.med_types or row.diagnosis_prefixes
        else None
    )
    return catalogue_pb2.CatalogueItem(
        code=row.code,
        name=row.name,
        kind=_KINDS[row.kind.value],
        chrgitm_lv=row.item_class.chrgitm_lv,
        selfpay_prop=format_decimal(row.selfpay_ratio),
        pric_uplmt_amt="" if row.price_ceiling is None else format_decimal(row.price_ceiling),
        restriction=restriction,
        valid_from=date_message(row.valid_from),
        valid_to=date_message(row.valid_to),
        source=catalogue_pb2.ITEM_SOURCE_NATIONAL
        if found.version.layer is Layer.NATIONAL_BASE
        else catalogue_pb2.ITEM_SOURCE_PROVINCIAL,
    )


def catalogue_entry(item: catalogue_pb2.CatalogueItem) -> CatalogueEntry:
    """The core's entry for an item another node's LookupItems answered (the inverse of :func:`item_message`)."""
    return CatalogueRow(
        code=item.code,
        name=item.name,
        kind=_KIND_NAMES[item.kind],
        item_class=CLASS_BY_LEVEL[item.chrgitm_lv],
        selfpay_ratio=Decimal(item.selfpay_prop) if item.selfpay_prop else ZERO,
        price_ceiling=Decimal(item.pric_uplmt_amt) if item.pric_uplmt_amt else None,
        med_types=tuple(item.restriction.med_types),
        diagnosis_prefixes=tuple(item.restriction.diagnosis_prefixes),
    ).entry()


def policy_message(version: PolicyVersion) -> policy_pb2.Policy:
    """A stored policy version for the wire: money in fen, ratios as decimal strings."""
    policy = version.policy
    rules = []
    for rule in policy.rules:
        single = len(rule.segments) == 1
        rules.append(
            policy_pb2.PolicyRule(
                med_types=rule.med_types,
                psn_types=rule.psn_types,
                institution_levels=rule.institution_levels,
                deductible_fen=to_fen(rule.deductible),
                deductible_scope=_SCOPES[rule.deductible_scope],
                deductible_key=rule.deductible_key or "",
                ratio=format_decimal(rule.segments[0].ratio) if single else "",
                segments=[]
                if single
                else [
                    policy_pb2.Segment(from_fen=to_fen(segment.start), ratio=format_decimal(segment.ratio))
                    for segment in rule.segments
                ],
                segment_key=rule.segment_key or "",
                cap_fen=0 if rule.cap is None else to_fen(rule.cap),
                has_cap=rule.cap is not None,
                cap_key=rule.cap_key or "",
            )
        )
    return policy_pb2.Policy(
        version_id=version.version_id,
        insuplc_admdvs=version.insuplc_admdvs,
        insutype=version.insutype,
        effective_date=date_message(version.effective_date),
        end_date=date_message(version.end_date),
        rules=rules,
        ratio_adjustments={key: format_decimal(value) for key, value in policy.ratio_adjustments.items()},
        import_time=timestamp_message(version.import_time),
    )


def policy_document(message: policy_pb2.Policy) -> dict[str, Any]:
    """The calc-format ``policy`` block of a policy another node's GetPolicy answered.

    The inverse of :func:`policy_message`: the core's own parser then checks and reads it,
    exactly as it reads a stored version.
    """
    rules: list[dict[str, Any]] = []
    for rule in message.rules:
        document: dict[str, Any] = {
            "med_types": list(rule.med_types),
            "psn_types": list(rule.psn_types),
            "institution_levels": list(rule.institution_levels),
            "deductible": format_money(from_fen(rule.deductible_fen)),
            "deductible_scope": _SCOPE_NAMES.get(rule.deductible_scope),
        }
        if rule.segments:
            document["segments"] = [
                {"from": format_money(from_fen(segment.from_fen)), "ratio": segment.ratio}
                for segment in rule.segments
            ]
        else:
            document["ratio"] = rule.ratio
        if rule.has_cap:
            document["cap"] = format_money(from_fen(rule.cap_fen))
        for key in ("deductible_key", "segment_key", "cap_key"):
            if getattr(rule, key):
                document[key] = getattr(rule, key)
        rules.append(document)
    return {"rules": rules, "ratio_adjustments": dict(message.ratio_adjustments)}


def renamed(error: DomainError) -> DomainError:
    """The same refusal with core field paths renamed to the proto's."""
    if not error.violations:
        return error
    violations = []
    for violation in error.violations:
        field = violation.field
        for pattern, replacement in _RENAMES:
            field = pattern.sub(replacement, field)
        violations.append(FieldViolation(field, violation.description))
    message = "; ".join(f"{v.field}: {v.description}" for v in violations)
    return error_class(error.reason_code)(error.reason_code, message, tuple(violations), dict(error.metadata))


def _visit_document(visit: visit_pb2.VisitFacts) -> dict[str, object]:
    day = visit.service_date
    return {
        "med_type": visit.med_type or None,
        "service_date": None
        if (day.year, day.month, day.day) == (0, 0, 0)
        else f"{day.year:04d}-{day.month:02d}-{day.day:02d}",
        "institution_level": visit.institution_level or None,
        "diagnoses": list(visit.diagnoses),
        "chronic_disease": visit.chronic_disease or None,
        "emergency": visit.emergency,
    }


def _filing_category(number: int) -> str | None:
    if number == filing_category_pb2.FILING_CATEGORY_UNSPECIFIED:
        return None
    try:
        name = filing_category_pb2.FilingCategory.Name(number)  # type: ignore[arg-type]
    except ValueError:
        raise invalid("INVALID_ARGUMENT", "filing_category", f"unknown filing category {number}") from None
    return name.removeprefix(_CATEGORY_PREFIX).lower()


def _psn_type(value: str) -> str:
    if psn_type_group(value.strip()) is None:
        raise invalid(
            "INVALID_CODE",
            "psn_type",
            f"must be employed, retired, resident or a 4-digit psn_type, got {value!r}",
        )
    return value.strip()


def _fee_item(item: fee_item_pb2.FeeItem, index: int) -> FeeItem:
    where = f"items[{index}]"
    if not item.feedetl_sn.strip():
        raise invalid("INVALID_ARGUMENT", f"{where}.feedetl_sn", "is required")
    return FeeItem(
        sn=item.feedetl_sn.strip(),
        code=check_item_code(item.med_list_codg, f"{where}.med_list_codg")[0],
        qty=parse_decimal(item.cnt, f"{where}.cnt", max_places=4),
        price=parse_decimal(item.pric, f"{where}.pric", max_places=6),
        amount=from_fen(item.det_item_fee_sumamt_fen) if item.det_item_fee_sumamt_fen else None,
    )


def estimate_command(request: policy_service_pb2.EstimateRequest) -> EstimateCommand:
    """An ``EstimateRequest`` as core values; every bad field is named at once."""
    problems: list[DomainError] = []

    def checked(build: Callable[[], T]) -> T:
        try:
            return build()
        except DomainError as error:
            problems.append(error)
            return None  # type: ignore[return-value]

    insuplc_admdvs = checked(lambda: check_insured_region(request.insuplc_admdvs))
    treatment = checked(lambda: check_region(request.visit.mdtrtarea_admvs, "visit.mdtrtarea_admvs"))
    visit = checked(lambda: parse_visit(_visit_document(request.visit), "visit"))
    person = checked(
        lambda: Person(
            insutype=check_insutype(request.insutype),
            psn_type=_psn_type(request.psn_type),
            filing_category=_filing_category(request.filing_category),
            account_balance=from_fen(request.account_balance_fen),
            use_account=request.use_account,
        )
    )
    items = [checked(lambda i=index, it=item: _fee_item(it, i)) for index, item in enumerate(request.items)]
    snapshot = request.accumulators
    accumulators = Accumulators(
        {key: from_fen(fen) for key, fen in snapshot.deductible_fen.items()},
        {key: from_fen(fen) for key, fen in snapshot.segment_fen.items()},
        {key: from_fen(fen) for key, fen in snapshot.cap_fen.items()},
    )
    error = combine(problems)
    if error is not None:
        raise renamed(error)
    return EstimateCommand(insuplc_admdvs, treatment, visit, person, tuple(items), accumulators)
