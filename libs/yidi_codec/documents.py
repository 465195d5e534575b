"""The treatment side's records as stored: typed column values and versioned JSON documents.

What is queried, summed or compared is a typed column named as the proto's field: a
settlement's amounts and versions, a fee line's split in fen, a visit's facts, a self-pay
bill's total. What nests (and the rest of a fee line) is a JSON document ``{"v": 1, ...}``
keyed by the proto's field names: money integer fen, dates ``YYYY-MM-DD``, times RFC 3339
in UTC (ISO-8601, nanoseconds kept), enums by name (``class_c``; a number without a name
stays a number, so a newer peer's value survives), an unset message null. So a row reads
without protobuf, in SQL as in Python.

Each form is converted here, field by field, both ways, with no protobuf bytes and no
``json_format`` in between: Settle reads a visit's and its lines' and writes a settlement's
on every call. Every conversion is exact: stored and read back, a message compares equal.
A reader refuses a document version it does not know.

Only the message types are imported here; the tables are the treatment side's own
(``yidi_services.settlement.treatment.models``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any, TypeVar, cast

from google.protobuf.timestamp_pb2 import Timestamp
from google.type.date_pb2 import Date

from yidi.settlement.v1 import settlement_pb2
from yidi.type.v1 import fee_item_pb2, settlement_result_pb2, visit_pb2

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

Number = TypeVar("Number", bound=int)

Document = dict[str, Any]
"""A JSON object, as a JSON column holds it."""

VERSION = 1
"""The version of every document written."""

_EPOCH = datetime(1970, 1, 1)
_SECOND = timedelta(seconds=1)


class _Fields:
    """Scalar fields of a message, stored under their own names (columns or document keys).

    Read in one C call each way: the conversions run on every Settle.
    """

    def __init__(self, *names: str) -> None:
        self.names = names
        self._attributes = attrgetter(*names)
        self._items = itemgetter(*names)

    def of(self, source: Any) -> Document:
        """The fields of a message, or the columns of a row."""
        return dict(zip(self.names, self._attributes(source), strict=True))

    def in_(self, document: Document) -> Document:
        """The fields a document holds."""
        return dict(zip(self.names, self._items(document), strict=True))


_FACTS = _Fields(
    "med_type", "institution_level", "chronic_disease", "emergency", "fixmedins_code", "mdtrtarea_admvs"
)
"""VisitFacts' but ``service_date`` and ``diagnoses``."""
_FEE_ITEM = _Fields(
    "feedetl_sn",
    "med_list_codg",
    "medins_list_codg",
    "cnt",
    "pric",
    "det_item_fee_sumamt_fen",
    "chrg_bchno",
    "rxno",
    "bilg_dept_codg",
    "bilg_dr_codg",
)
"""FeeItem's but ``fee_ocur_time``."""
_ITEM_AMOUNTS = _Fields(
    "det_item_fee_sumamt_fen",
    "fulamt_ownpay_amt_fen",
    "overlmt_amt_fen",
    "preselfpay_amt_fen",
    "inscp_scp_amt_fen",
)
"""ItemResult's split of the line in fen: a fee line row's columns."""
_ITEM_TERMS = _Fields("feedetl_sn", "med_list_codg", "chrgitm_lv", "selfpay_prop", "pric_uplmt_amt", "memo")
"""ItemResult's others but ``self_pay_reasons``."""
_FUND_LINE = _Fields(
    "fund_pay_type",
    "fund_pay_type_name",
    "inscp_scp_amt_fen",
    "crt_payb_lmt_amt_fen",
    "fund_payamt_fen",
    "setl_proc_info",
    "unlimited",
)
_CHANGE = _Fields("key", "year", "before_fen", "delta_fen", "after_fen")
"""AccumulatorChange's but ``kind``."""
_SEGMENT = _Fields(
    "from_fen", "to_fen", "open_ended", "base_ratio", "adjusted_ratio", "amount_fen", "fund_raw"
)
_EXPLANATION = _Fields(
    "rule_index",
    "rule_summary",
    "deductible_fen",
    "deductible_scope",
    "deductible_key",
    "deductible_counted_before_fen",
    "filing_category",
    "ratio_adjustment",
    "cap_key",
    "cap_fen",
    "cap_room_before_fen",
    "cap_room_after_fen",
    "account_used",
)
"""Explanation's but ``segments`` and ``lines``."""
_AMOUNTS = _Fields(
    "medfee_sumamt_fen",
    "fulamt_ownpay_amt_fen",
    "overlmt_selfpay_fen",
    "preselfpay_amt_fen",
    "inscp_scp_amt_fen",
    "act_pay_dedc_fen",
    "hifp_pay_fen",
    "pool_prop_selfpay",
    "fund_pay_sumamt_fen",
    "psn_part_amt_fen",
    "acct_pay_fen",
    "psn_cash_pay_fen",
    "balc_fen",
    "cap_exhausted",
)
"""SettlementAmounts': a settlement row's columns."""
AMOUNT_COLUMNS = _AMOUNTS.names
_FURTHER = _Fields("hifob_pay_fen", "hifmi_pay_fen", "cvlserv_pay_fen", "maf_pay_fen", "acct_mulaid_pay_fen")
"""The further funds' and 门诊共济's amounts: kept in ``details`` (key ``further``) when any is not zero,
so rows of settlements without them are stored as before."""


def _names(enum: _EnumTypeWrapper[Number], prefix: str) -> tuple[dict[int, str], dict[str, Number]]:
    """An enum's stored names by number (``SELF_PAY_REASON_CLASS_C`` is ``class_c``), and back."""
    numbers = {name.removeprefix(prefix).lower(): number for name, number in enum.items()}
    return {number: name for name, number in numbers.items()}, numbers


_REASON_NAMES, _REASON_NUMBERS = _names(fee_item_pb2.SelfPayReason, "SELF_PAY_REASON_")
_KIND_NAMES, _KIND_NUMBERS = _names(settlement_result_pb2.AccumulatorKind, "ACCUMULATOR_KIND_")


def _named(names: dict[int, str], number: int) -> str | int:
    return names.get(number, number)


def _numbered(numbers: dict[str, Number], value: str | int) -> Number:
    return numbers[value] if isinstance(value, str) else cast(Number, value)


def _versioned(fields: Document) -> Document:
    return {"v": VERSION, **fields}


def _checked(document: Document) -> Document:
    """The document, if this code knows its version."""
    if document.get("v") != VERSION:
        raise ValueError(f"stored document of unknown version {document.get('v')!r}")
    return document


def _day(message: Date) -> date | None:
    """A set Date as a day (stored ones are real days, checked on the way in); unset None."""
    if not (message.year or message.month or message.day):
        return None
    return date(message.year, message.month, message.day)


def _date(day: date | None) -> Date | None:
    return None if day is None else Date(year=day.year, month=day.month, day=day.day)


def _day_text(message: Date) -> str | None:
    day = _day(message)
    return None if day is None else day.isoformat()


def _date_of_text(text: str | None) -> Date | None:
    return None if text is None else _date(date.fromisoformat(text))


def _moment_text(stamp: Timestamp) -> str:
    """``2026-01-05T02:00:00Z``, or ``…:00.000000123Z`` with its nanoseconds (stored ones are in range)."""
    text = (_EPOCH + timedelta(seconds=stamp.seconds)).isoformat()
    return f"{text}.{stamp.nanos:09d}Z" if stamp.nanos else f"{text}Z"


def _stamp(text: str) -> Timestamp:
    """The inverse of :func:`_moment_text`, for any number of fraction digits (``.5`` is half a second)."""
    head, _, fraction = text.removesuffix("Z").partition(".")
    return Timestamp(
        seconds=(datetime.fromisoformat(head) - _EPOCH) // _SECOND, nanos=int(fraction.ljust(9, "0"))
    )


# -- visits ---------------------------------------------------------------------------------


def diagnoses_document(codes: Iterable[str]) -> Document:
    """A visit's diagnoses: ``{"v": 1, "codes": [...]}``."""
    return {"v": VERSION, "codes": list(codes)}


def visit_facts_columns(facts: visit_pb2.VisitFacts) -> Document:
    """A visit row's columns of its facts: scalars typed, the service date a day, the diagnoses a document."""
    columns = _FACTS.of(facts)
    columns["service_date"] = _day(facts.service_date)
    columns["diagnoses"] = diagnoses_document(facts.diagnoses)
    return columns


def visit_facts_from_columns(row: Any) -> visit_pb2.VisitFacts:
    """The facts of a visit row (anything with the columns as attributes)."""
    return visit_pb2.VisitFacts(
        **_FACTS.of(row), service_date=_date(row.service_date), diagnoses=_checked(row.diagnoses)["codes"]
    )


def _facts(facts: visit_pb2.VisitFacts) -> Document:
    document = _FACTS.of(facts)
    document["service_date"] = _day_text(facts.service_date)
    document["diagnoses"] = list(facts.diagnoses)
    return document


def _facts_of(document: Document) -> visit_pb2.VisitFacts:
    return visit_pb2.VisitFacts(
        **_FACTS.in_(document),
        service_date=_date_of_text(document["service_date"]),
        diagnoses=document["diagnoses"],
    )


# -- fee lines ------------------------------------------------------------------------------


def _fee_item(item: fee_item_pb2.FeeItem) -> Document:
    document = _FEE_ITEM.of(item)
    document["fee_ocur_time"] = _moment_text(item.fee_ocur_time) if item.HasField("fee_ocur_time") else None
    if item.outside_hospital:  # only then: the documents of every other line stay as they were
        document["outside_hospital"] = True
    return document


def _fee_item_of(document: Document) -> fee_item_pb2.FeeItem:
    moment = document["fee_ocur_time"]
    return fee_item_pb2.FeeItem(
        **_FEE_ITEM.in_(document),
        fee_ocur_time=None if moment is None else _stamp(moment),
        outside_hospital=document.get("outside_hospital", False),
    )


def fee_item_document(item: fee_item_pb2.FeeItem) -> Document:
    """A fee line as uploaded."""
    return _versioned(_fee_item(item))


def fee_item_from_document(document: Document) -> fee_item_pb2.FeeItem:
    """The inverse of :func:`fee_item_document`."""
    return _fee_item_of(_checked(document))


def _item_terms(line: fee_item_pb2.ItemResult) -> Document:
    document = _ITEM_TERMS.of(line)
    document["self_pay_reasons"] = [_named(_REASON_NAMES, reason) for reason in line.self_pay_reasons]
    return document


def _item_result(line: fee_item_pb2.ItemResult) -> Document:
    document = _ITEM_AMOUNTS.of(line)
    document.update(_item_terms(line))
    return document


def _item_result_of(terms: Document, amounts: Document) -> fee_item_pb2.ItemResult:
    return fee_item_pb2.ItemResult(
        **amounts,
        **_ITEM_TERMS.in_(terms),
        self_pay_reasons=[_numbered(_REASON_NUMBERS, reason) for reason in terms["self_pay_reasons"]],
    )


def item_result_columns(line: fee_item_pb2.ItemResult) -> Document:
    """A fee line row's columns of its classification: the split in fen typed, the rest in ``classified``."""
    columns = _ITEM_AMOUNTS.of(line)
    columns["classified"] = _versioned(_item_terms(line))
    return columns


def item_result_from_columns(row: Any) -> fee_item_pb2.ItemResult:
    """The classification of a fee line row (anything with the columns as attributes)."""
    return _item_result_of(_checked(row.classified), _ITEM_AMOUNTS.of(row))


# -- settlements ----------------------------------------------------------------------------


def _explanation(why: settlement_result_pb2.Explanation) -> Document:
    document = _EXPLANATION.of(why)
    document["segments"] = [_SEGMENT.of(step) for step in why.segments]
    document["lines"] = list(why.lines)
    return document


def _explanation_of(document: Document) -> settlement_result_pb2.Explanation:
    return settlement_result_pb2.Explanation(
        **_EXPLANATION.in_(document),
        segments=[
            settlement_result_pb2.SegmentExplanation(**_SEGMENT.in_(step)) for step in document["segments"]
        ],
        lines=document["lines"],
    )


def settlement_result_columns(result: settlement_result_pb2.SettlementResult) -> Document:
    """A settlement row's columns of its result: amounts and versions typed, the rest in ``details``.

    ``details`` holds the fund lines, the classified lines, the accumulator changes and the
    explanation (null when the result has none).
    """
    columns = _AMOUNTS.of(result.amounts)
    columns["catalogue_version"] = result.catalogue_version
    columns["policy_version"] = result.policy_version
    columns["details"] = {
        "v": VERSION,
        "fund_lines": [_FUND_LINE.of(line) for line in result.fund_lines],
        "items": [_item_result(line) for line in result.items],
        "accumulator_changes": [
            {"kind": _named(_KIND_NAMES, change.kind), **_CHANGE.of(change)}
            for change in result.accumulator_changes
        ],
        "explanation": _explanation(result.explanation) if result.HasField("explanation") else None,
    }
    further = _FURTHER.of(result.amounts)
    if any(further.values()):
        columns["details"]["further"] = further
    return columns


def acct_mulaid_pay_fen(details: Document) -> int:
    """What a family member's account paid (门诊共济) in a stored result's ``details``; 0 when none."""
    further: Document = details.get("further") or {}
    return int(further.get("acct_mulaid_pay_fen", 0))


def settlement_result_from_columns(row: Any) -> settlement_result_pb2.SettlementResult:
    """The result of a settlement row (anything with the columns as attributes)."""
    details = _checked(row.details)
    explanation = details["explanation"]
    return settlement_result_pb2.SettlementResult(
        amounts=settlement_result_pb2.SettlementAmounts(**_AMOUNTS.of(row), **(details.get("further") or {})),
        fund_lines=[
            settlement_result_pb2.FundPayLine(**_FUND_LINE.in_(line)) for line in details["fund_lines"]
        ],
        items=[_item_result_of(line, _ITEM_AMOUNTS.in_(line)) for line in details["items"]],
        accumulator_changes=[
            settlement_result_pb2.AccumulatorChange(
                kind=_numbered(_KIND_NUMBERS, change["kind"]), **_CHANGE.in_(change)
            )
            for change in details["accumulator_changes"]
        ],
        explanation=None if explanation is None else _explanation_of(explanation),
        catalogue_version=row.catalogue_version,
        policy_version=row.policy_version,
    )


# -- self-pay bills -------------------------------------------------------------------------


def self_pay_bill_columns(bill: settlement_pb2.SelfPayBill) -> Document:
    """A bill row's columns of the bill but its id, credential and upload time (the row's own columns).

    ``details`` holds the visit facts, the lines and the invoice numbers.
    """
    return {
        "fixmedins_code": bill.fixmedins_code,
        "insuplc_admdvs": bill.insuplc_admdvs,
        "medfee_sumamt_fen": bill.medfee_sumamt_fen,
        "service_date": _day(bill.service_date),
        "direct_settlement_failure_reason": bill.direct_settlement_failure_reason,
        "mdtrt_id": bill.mdtrt_id or None,
        "details": {
            "v": VERSION,
            "facts": _facts(bill.facts) if bill.HasField("facts") else None,
            "items": [_fee_item(item) for item in bill.items],
            "invoice_numbers": list(bill.invoice_numbers),
        },
    }


def self_pay_bill_from_columns(row: Any) -> settlement_pb2.SelfPayBill:
    """A bill row's bill (anything with the columns as attributes) without id, credential, upload time."""
    details = _checked(row.details)
    facts = details["facts"]
    return settlement_pb2.SelfPayBill(
        fixmedins_code=row.fixmedins_code,
        insuplc_admdvs=row.insuplc_admdvs,
        facts=None if facts is None else _facts_of(facts),
        items=[_fee_item_of(item) for item in details["items"]],
        medfee_sumamt_fen=row.medfee_sumamt_fen,
        invoice_numbers=details["invoice_numbers"],
        direct_settlement_failure_reason=row.direct_settlement_failure_reason,
        service_date=_date(row.service_date),
        mdtrt_id=getattr(row, "mdtrt_id", None) or "",  # rows before settlement_0009 have none
    )
