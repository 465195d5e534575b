"""Proto ↔ plain values for the catalogue service: versions, items and policies with their
store's fields, and the estimate input.

The core values inside them convert with :mod:`yidi_codec`; field paths in refusals are the
proto's (``items[2].cnt``, ``visit.service_date``).
"""

from __future__ import annotations

from collections.abc import Callable

from yidi.catalogue.v1 import catalogue_pb2, policy_pb2, policy_service_pb2
from yidi.type.v1 import fee_item_pb2
from yidi_codec.built_once import BuiltOnce
from yidi_codec.catalogue import entry_to_proto
from yidi_codec.fields import Violations, proto_paths
from yidi_codec.policies import policy_to_proto
from yidi_codec.types import filing_category_from_proto
from yidi_codec.visits import visit_from_proto
from yidi_core.accumulators import Accumulators
from yidi_core.catalogue import FeeItem
from yidi_core.codes import check_item_code, check_region
from yidi_core.dictionaries import psn_type_group
from yidi_core.errors import invalid
from yidi_core.money import from_fen, parse_decimal
from yidi_core.settlement import Person
from yidi_runtime.wire import date_message, timestamp_message
from yidi_services.catalogue.catalogues import CatalogueVersion, Found, Layer
from yidi_services.catalogue.estimate import EstimateCommand
from yidi_services.catalogue.policies import PolicyVersion, check_insured_region, check_insutype

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
    """A catalogue row in force, with its kind, validity and where it came from."""
    row = found.row
    item = entry_to_proto(row.entry())
    item.kind = _KINDS[row.kind.value]
    if row.valid_from is not None:
        item.valid_from.CopyFrom(date_message(row.valid_from))
    if row.valid_to is not None:
        item.valid_to.CopyFrom(date_message(row.valid_to))
    item.source = (
        catalogue_pb2.ITEM_SOURCE_NATIONAL
        if found.version.layer is Layer.NATIONAL_BASE
        else catalogue_pb2.ITEM_SOURCE_PROVINCIAL
    )
    return item


def policy_message(version: PolicyVersion) -> policy_pb2.Policy:
    """A stored policy version for the wire: money in fen, ratios as decimal strings."""
    message = policy_to_proto(version.policy)
    message.version_id = version.version_id
    message.insuplc_admdvs = version.insuplc_admdvs
    message.insutype = version.insutype
    message.effective_date.CopyFrom(date_message(version.effective_date))
    if version.end_date is not None:
        message.end_date.CopyFrom(date_message(version.end_date))
    message.import_time.CopyFrom(timestamp_message(version.import_time))
    return message


class PolicyMessages:
    """Each stored version's wire message, built once: a version never changes once imported.

    GetPolicy is asked on every settlement at the insured node; building the message reads
    the stored document into the core's policy and writes it out again, which costs more
    than finding the version. At most ``size`` versions are kept (the least recently asked go).
    """

    def __init__(self, size: int = 1_024) -> None:
        self._built: BuiltOnce[policy_pb2.Policy] = BuiltOnce(size)

    def of(self, pk: int, version: Callable[[], PolicyVersion]) -> policy_pb2.Policy:
        """The message of stored version ``pk`` (shared: callers copy it into their responses, never
        change it); ``version`` reads the version when it is not built yet."""
        return self._built.get(pk, lambda: policy_message(version()))


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
    violations = Violations()
    checked = violations.check
    insuplc_admdvs = checked(lambda: check_insured_region(request.insuplc_admdvs))
    treatment = checked(lambda: check_region(request.visit.mdtrtarea_admvs, "visit.mdtrtarea_admvs"))
    visit = checked(lambda: visit_from_proto(request.visit, "visit"))
    person = checked(
        lambda: Person(
            insutype=check_insutype(request.insutype),
            psn_type=_psn_type(request.psn_type),
            filing_category=filing_category_from_proto(request.filing_category),
            account_balance=from_fen(request.account_balance_fen),
            use_account=request.use_account,
            low_income=request.low_income,
            civil_servant=request.civil_servant,
            assistance_category=request.assistance_category.strip() or None,
            family_account_balance=from_fen(request.family_account_balance_fen),
            use_family_account=request.use_family_account,
        )
    )
    items = [checked(lambda i=index, it=item: _fee_item(it, i)) for index, item in enumerate(request.items)]
    snapshot = request.accumulators
    accumulators = Accumulators(
        {key: from_fen(fen) for key, fen in snapshot.deductible_fen.items()},
        {key: from_fen(fen) for key, fen in snapshot.segment_fen.items()},
        {key: from_fen(fen) for key, fen in snapshot.cap_fen.items()},
        {key: from_fen(fen) for key, fen in snapshot.fund_fen.items()},
    )
    error = violations.combined()
    if error is not None:
        raise proto_paths(error)
    return EstimateCommand(insuplc_admdvs, treatment, visit, person, tuple(items), accumulators)
