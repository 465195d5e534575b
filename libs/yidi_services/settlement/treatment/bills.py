"""Self-pay bills (手工报销线上办理): the full bill of a visit direct settlement could not settle.

One electronic record every office reads instead of one paper invoice three offices each
demand. The total must equal the lines (AMOUNT_MISMATCH); the credential is kept as
presented and masked in every view.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from yidi.settlement.v1 import settlement_pb2
from yidi.type.v1 import person_pb2, visit_pb2
from yidi_codec.documents import self_pay_bill_columns, self_pay_bill_from_columns
from yidi_codec.fields import Violations
from yidi_core.codes import check_chronic_disease, check_diagnosis, check_region, mask_id_number
from yidi_core.dictionaries import NATIONAL
from yidi_core.errors import REASONS, DomainError, invalid
from yidi_core.money import check_fen
from yidi_runtime.wire import day_of, ensure_not_future, timestamp_message
from yidi_services.settlement.treatment.catalogue import fee_items, line_amounts_fen
from yidi_services.settlement.treatment.checks import Caller, check_credential
from yidi_services.settlement.treatment.fees import ensure_times_past
from yidi_services.settlement.treatment.models import SelfPayBillRow

_VISIT_ID_MAX = 30


def checked_bill(
    bill: settlement_pb2.SelfPayBill, caller: Caller, now: datetime
) -> settlement_pb2.SelfPayBill:
    """The bill as it will be stored: checked field by field, line amounts filled in, institution the caller.

    Its service date and fee times may not lie in the future; its lines may not total more than
    :data:`~yidi_core.money.MAX_AMOUNT_FEN`.
    """
    if bill.fixmedins_code:
        caller.owns(bill.fixmedins_code, "the bill")
    problems = Violations()
    problems.check(lambda: check_credential(bill.credential, "bill.credential"))
    problems.check(lambda: check_region(bill.insuplc_admdvs, "bill.insuplc_admdvs"))
    facts = problems.check(lambda: _facts(bill.facts, caller))
    problems.check(
        lambda: ensure_not_future(day_of(bill.service_date, "bill.service_date"), now, "bill.service_date")
    )
    amounts = problems.check(lambda: line_amounts_fen(fee_items(bill.items, "bill.items"), "bill.items"))
    problems.check(lambda: ensure_times_past(bill.items, now, "bill.items"))
    if amounts is not None:
        problems.check(lambda: check_fen(sum(amounts), "bill.items", "the bill's lines together"))
    for index, number in enumerate(bill.invoice_numbers):
        if not number.strip() or len(number) > 64:
            problems.add(
                invalid("INVALID_ARGUMENT", f"bill.invoice_numbers[{index}]", "must be 1 to 64 characters")
            )
    if len(bill.mdtrt_id.strip()) > _VISIT_ID_MAX:
        problems.add(invalid("INVALID_ARGUMENT", "bill.mdtrt_id", f"at most {_VISIT_ID_MAX} characters"))
    reason = bill.direct_settlement_failure_reason
    if reason and reason not in REASONS:
        problems.add(
            invalid(
                "INVALID_ARGUMENT",
                "bill.direct_settlement_failure_reason",
                f"{reason[:40]!r} is not a stable reason",
            )
        )
    problems.raise_any()
    assert amounts is not None and facts is not None
    if sum(amounts) != bill.medfee_sumamt_fen:
        raise invalid(
            "AMOUNT_MISMATCH",
            "bill.medfee_sumamt_fen",
            f"{bill.medfee_sumamt_fen} fen differs from the {sum(amounts)} fen of the lines",
        )
    stored = settlement_pb2.SelfPayBill()
    stored.CopyFrom(bill)
    stored.fixmedins_code = caller.fixmedins_code
    stored.mdtrt_id = bill.mdtrt_id.strip()
    stored.facts.CopyFrom(facts)
    for item, fen in zip(stored.items, amounts, strict=True):
        item.det_item_fee_sumamt_fen = fen
    return stored


def _facts(given: visit_pb2.VisitFacts, caller: Caller) -> visit_pb2.VisitFacts:
    problems = Violations()
    problems.check(
        lambda: NATIONAL.check(
            "med_type", given.med_type, "bill.facts.med_type", region=caller.mdtrtarea_admvs
        )
    )
    # A day or unset, like the bill's own: it is kept as a date.
    problems.check(lambda: day_of(given.service_date, "bill.facts.service_date"))
    for index, code in enumerate(given.diagnoses):
        problems.check(lambda code=code, index=index: check_diagnosis(code, f"bill.facts.diagnoses[{index}]"))
    if given.chronic_disease:
        problems.check(lambda: check_chronic_disease(given.chronic_disease, "bill.facts.chronic_disease"))
    problems.raise_any()
    facts = visit_pb2.VisitFacts()
    facts.CopyFrom(given)
    facts.fixmedins_code = caller.fixmedins_code
    facts.mdtrtarea_admvs = facts.mdtrtarea_admvs or caller.mdtrtarea_admvs
    return facts


def store(
    session: Session, bill_id: str, request_id: str, bill: settlement_pb2.SelfPayBill, now: datetime
) -> settlement_pb2.SelfPayBill:
    """Keep the bill; answer its masked view."""
    credential = bill.credential
    row = SelfPayBillRow(
        bill_id=bill_id,
        request_id=request_id,
        mdtrt_cert_type=credential.mdtrt_cert_type,
        mdtrt_cert_no=credential.mdtrt_cert_no,
        card_sn=credential.card_sn,
        **self_pay_bill_columns(bill),
        upload_time=now,
    )
    session.add(row)
    return view(row)


def find(session: Session, bill_id: str, caller: Caller | None) -> settlement_pb2.SelfPayBill:
    """A bill's masked view (an institution reads only its own)."""
    row = session.get(SelfPayBillRow, bill_id.strip()) if bill_id.strip() else None
    if row is None:
        raise DomainError(
            "NOT_FOUND", f"no self-pay bill {bill_id[:40]!r}", metadata={"bill_id": bill_id[:40]}
        )
    if caller is not None:
        caller.owns(row.fixmedins_code, f"bill {row.bill_id}")
    return view(row)


def view(row: SelfPayBillRow) -> settlement_pb2.SelfPayBill:
    """The bill with its id, upload time and masked credential."""
    bill = self_pay_bill_from_columns(row)
    bill.bill_id = row.bill_id
    bill.upload_time.CopyFrom(timestamp_message(row.upload_time))
    bill.credential.CopyFrom(
        person_pb2.Credential(
            mdtrt_cert_type=row.mdtrt_cert_type,
            mdtrt_cert_no=mask_id_number(row.mdtrt_cert_no),
            card_sn=mask_id_number(row.card_sn) if row.card_sn else "",
        )
    )
    return bill
