"""Proto ↔ core values for the insured side: the visit, the classified bill, the person, the movements.

The treatment place sends the bill already classified (``ItemResult`` lines in fen); the
insured place turns it back into core values and applies its own policy with
:func:`~yidi_core.settlement.settle_classified`, so both places share one arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TypeVar

from yidi.settlement.v1 import insured_settlement_service_pb2 as api
from yidi.type.v1 import fee_item_pb2, filing_category_pb2, person_pb2, settlement_result_pb2, visit_pb2
from yidi_core.case_format import parse_visit
from yidi_core.catalogue import ItemClass, ItemResult, SelfPayReason
from yidi_core.errors import DomainError, combine, invalid
from yidi_core.money import ZERO, from_fen, parse_decimal
from yidi_core.settlement import Person, Visit
from yidi_services.catalogue.messages import renamed
from yidi_services.settlement.insured.ledger import Movement

T = TypeVar("T")
_CLASSES = {"01": ItemClass.A, "02": ItemClass.B, "03": ItemClass.C}
_REASONS = {
    fee_item_pb2.SELF_PAY_REASON_NOT_IN_CATALOGUE: SelfPayReason.NOT_IN_CATALOGUE,
    fee_item_pb2.SELF_PAY_REASON_CLASS_C: SelfPayReason.CLASS_C,
    fee_item_pb2.SELF_PAY_REASON_RESTRICTED_MED_TYPE: SelfPayReason.MED_TYPE_RESTRICTED,
    fee_item_pb2.SELF_PAY_REASON_RESTRICTED_DIAGNOSIS: SelfPayReason.DIAGNOSIS_RESTRICTED,
    fee_item_pb2.SELF_PAY_REASON_OVER_PRICE_CEILING: SelfPayReason.OVER_PRICE_CEILING,
    fee_item_pb2.SELF_PAY_REASON_FIRST_SELF_PAY: SelfPayReason.FIRST_SELF_PAY,
}
_TOTALS = (
    ("medfee_sumamt_fen", "det_item_fee_sumamt_fen"),
    ("fulamt_ownpay_amt_fen", "fulamt_ownpay_amt_fen"),
    ("overlmt_selfpay_fen", "overlmt_amt_fen"),
    ("preselfpay_amt_fen", "preselfpay_amt_fen"),
    ("inscp_scp_amt_fen", "inscp_scp_amt_fen"),
)


class Problems:
    """Collects every bad field of a request so the caller hears about all of them at once."""

    def __init__(self) -> None:
        self._errors: list[DomainError] = []

    def add(self, error: DomainError) -> None:
        """Record one refusal."""
        self._errors.append(error)

    def checked(self, build: Callable[[], T]) -> T:
        """``build()``, or None with its refusal recorded."""
        try:
            return build()
        except DomainError as error:
            self._errors.append(error)
            return None  # type: ignore[return-value]

    def raise_any(self) -> None:
        """Raise them together (field paths as the proto names them)."""
        error = combine(self._errors)
        if error is not None:
            raise renamed(error)


def required(value: str, field: str) -> str:
    """A required string field, stripped."""
    if not value.strip():
        raise invalid("INVALID_ARGUMENT", field, "is required")
    return value.strip()


def visit_of(facts: visit_pb2.VisitFacts, path: str = "facts") -> Visit:
    """The visit facts as the core's visit (codes checked by the ``calc`` parser)."""
    day = facts.service_date
    return parse_visit(
        {
            "med_type": facts.med_type or None,
            "service_date": None
            if (day.year, day.month, day.day) == (0, 0, 0)
            else f"{day.year:04d}-{day.month:02d}-{day.day:02d}",
            "institution_level": facts.institution_level or None,
            "diagnoses": list(facts.diagnoses),
            "chronic_disease": facts.chronic_disease or None,
            "emergency": facts.emergency,
        },
        path,
    )


def _optional_decimal(value: str, field: str) -> Decimal | None:
    return parse_decimal(value, field) if value.strip() else None


def item_result(line: fee_item_pb2.ItemResult, index: int) -> ItemResult:
    """One classified line from the wire (amounts in fen) as the core's line split."""
    where = f"items[{index}]"
    if line.chrgitm_lv and line.chrgitm_lv not in _CLASSES:
        raise invalid("INVALID_CODE", f"{where}.chrgitm_lv", f"must be 01, 02 or 03, got {line.chrgitm_lv!r}")
    unknown = [reason for reason in line.self_pay_reasons if reason not in _REASONS]
    if unknown:
        raise invalid("INVALID_ARGUMENT", f"{where}.self_pay_reasons", f"unknown reasons {unknown}")
    return ItemResult(
        sn=required(line.feedetl_sn, f"{where}.feedetl_sn"),
        code=line.med_list_codg,
        name="",
        amount=from_fen(line.det_item_fee_sumamt_fen),
        fulamt_ownpay=from_fen(line.fulamt_ownpay_amt_fen),
        overlmt_selfpay=from_fen(line.overlmt_amt_fen),
        preselfpay=from_fen(line.preselfpay_amt_fen),
        inscp=from_fen(line.inscp_scp_amt_fen),
        item_class=_CLASSES.get(line.chrgitm_lv),
        selfpay_ratio=_optional_decimal(line.selfpay_prop, f"{where}.selfpay_prop") or ZERO,
        price_ceiling=_optional_decimal(line.pric_uplmt_amt, f"{where}.pric_uplmt_amt"),
        reasons=tuple(_REASONS[reason] for reason in line.self_pay_reasons),  # type: ignore[index]
    )


def totals_problems(
    items: Sequence[fee_item_pb2.ItemResult], totals: api.ClassifiedTotals
) -> list[DomainError]:
    """Each total that is not the sum of its lines (AMOUNT_MISMATCH naming ``totals.<field>``)."""
    problems = []
    for total_field, line_field in _TOTALS:
        summed = sum(getattr(line, line_field) for line in items)
        stated = getattr(totals, total_field)
        if summed != stated:
            problems.append(
                invalid(
                    "AMOUNT_MISMATCH",
                    f"totals.{total_field}",
                    f"is {stated} fen but the lines add up to {summed} fen",
                )
            )
    return problems


def filing_category(number: int) -> str | None:
    """The snapshot's filing category as the policy's ``ratio_adjustments`` key (None: not filed)."""
    if number == filing_category_pb2.FILING_CATEGORY_UNSPECIFIED:
        return None
    name: str = filing_category_pb2.FilingCategory.Name(number)  # type: ignore[arg-type]
    return name.removeprefix("FILING_CATEGORY_").lower()


def person_of(snapshot: person_pb2.PersonSnapshot, use_account: bool, balance_fen: int) -> Person:
    """The insured person as the core settles them: the account only if filing says they have one."""
    return Person(
        insutype=snapshot.insutype,
        psn_type=snapshot.psn_type,
        filing_category=filing_category(snapshot.filing_category),
        account_balance=from_fen(balance_fen),
        use_account=use_account and snapshot.has_personal_account,
    )


def kind_number(kind: str) -> settlement_result_pb2.AccumulatorKind.ValueType:
    """A stored accumulator kind (``cap``, ``account`` …) as the wire's enum."""
    return settlement_result_pb2.AccumulatorKind.Value(f"ACCUMULATOR_KIND_{kind.upper()}")


def change_message(movement: Movement, year: int) -> settlement_result_pb2.AccumulatorChange:
    """One accumulator (or account) movement with its values before and after."""
    return settlement_result_pb2.AccumulatorChange(
        kind=kind_number(movement.kind),
        key=movement.key,
        year=year,
        before_fen=movement.before_fen,
        delta_fen=movement.delta_fen,
        after_fen=movement.before_fen + movement.delta_fen,
    )
