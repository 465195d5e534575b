"""Online manual reimbursement (手工报销线上办理) at the insured node: a self-pay bill settled with its own policy.

The bill comes from its treatment node, classified there by the treatment place's catalogue
(GetBill). Here the person is identified by the bill's credential and their filing decides
the category (:meth:`~yidi_services.settlement.insured.lookups.InsuredPlace.filing_status`): no
filing means no category, where the policy's rates for unfiled care apply. The core settles the
classified lines as it settles a direct settlement's, and the reimbursement is recorded in the
same ledger (:mod:`~yidi_services.settlement.insured.holds`), keyed by the bill so that it is
reimbursed once, final at once (no other node confirms it), with the accumulator changes it made.
The patient paid in full: the personal account is not touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from yidi.filing.v1 import filing_service_pb2, insured_person_pb2
from yidi.settlement.v1 import insured_settlement_service_pb2 as api
from yidi_codec.fields import Violations, proto_paths
from yidi_codec.persons import person_from_snapshot
from yidi_codec.results import item_result_from_proto, settlement_result_to_proto
from yidi_codec.visits import visit_from_proto
from yidi_core.catalogue import ItemResult
from yidi_core.errors import DomainError
from yidi_core.money import to_fen
from yidi_core.settlement import Visit, settle_classified
from yidi_runtime.config import region_contains
from yidi_services.settlement.insured import holds, ledger
from yidi_services.settlement.insured.apply import Terms
from yidi_services.settlement.insured.models import ApplicationKind, ApplicationState


def application_id(bill_id: str) -> str:
    """The ledger key of a bill's reimbursement: one per bill, whoever asks and however often."""
    return f"{bill_id}:reimburse"


def already_reimbursed(bill_id: str) -> DomainError:
    """ALREADY_SETTLED: the bill was reimbursed before."""
    return DomainError(
        "ALREADY_SETTLED",
        f"self-pay bill {bill_id} is already reimbursed",
        metadata={"bill_id": bill_id, "application_id": application_id(bill_id)},
    )


def ensure_not_reimbursed(session: Session, bill_id: str) -> None:
    """Refuse a bill reimbursed before (checked again under the person's lock when recording)."""
    if holds.state_of(session, application_id(bill_id)) is not None:
        raise already_reimbursed(bill_id)


@dataclass(frozen=True)
class BillToReimburse:
    """A fetched self-pay bill as the core reads it: its visit, its classified lines, whose it is."""

    bill_id: str
    bill: api.Bill
    visit: Visit
    items: tuple[ItemResult, ...]

    @property
    def year(self) -> int:
        """The accumulator year: the calendar year of the service date."""
        return self.visit.service_date.year


def bill_to_reimburse(bill: api.Bill, insuplc_admdvs: str) -> BillToReimburse:
    """The bill checked: a self-pay bill of a person insured in ``insuplc_admdvs``, its lines classified,
    whose visit (when it names one) was not settled directly since (ALREADY_SETTLED)."""
    self_pay = bill.self_pay_bill
    if not region_contains(insuplc_admdvs, self_pay.insuplc_admdvs):
        raise DomainError(
            "PERMISSION_DENIED_REGION",
            f"bill {self_pay.bill_id} is reimbursed by {self_pay.insuplc_admdvs}, not by {insuplc_admdvs}",
            metadata={"bill_id": self_pay.bill_id, "insuplc_admdvs": self_pay.insuplc_admdvs},
        )
    if not bill.HasField("person_credential"):  # the treatment node tells it only the insured place
        raise DomainError(
            "PERMISSION_DENIED_REGION",
            f"the treatment node did not name the patient of bill {self_pay.bill_id} to this node",
            metadata={"bill_id": self_pay.bill_id},
        )
    if bill.visit.setl_id:  # the bill arrived while the visit's Settle was under way: it settled first
        raise DomainError(
            "ALREADY_SETTLED",
            f"the visit {bill.visit.mdtrt_id} of bill {self_pay.bill_id} was settled directly ({bill.visit.setl_id})",
            metadata={
                "bill_id": self_pay.bill_id,
                "mdtrt_id": bill.visit.mdtrt_id,
                "setl_id": bill.visit.setl_id,
            },
        )
    problems = Violations()
    visit = problems.check(lambda: visit_from_proto(bill.facts, checked=False))
    items = [
        problems.check(lambda i=index, line=line: item_result_from_proto(line.classification, i))
        for index, line in enumerate(bill.lines)
    ]
    problems.raise_any()
    assert visit is not None
    return BillToReimburse(self_pay.bill_id, bill, visit, tuple(item for item in items if item is not None))


def eligibility_question(
    bill: BillToReimburse, insuplc_admdvs: str
) -> filing_service_pb2.CheckEligibilityRequest:
    """Filing's question about the bill's patient: which filing, if any, covered that care?

    Asked without the emergency flag, which would count the person as filed: here the filing
    itself decides, and the visit's emergency flag then picks the rate for unfiled care.
    """
    facts = bill.bill.facts
    return filing_service_pb2.CheckEligibilityRequest(
        person=insured_person_pb2.PersonLookup(credential=bill.bill.person_credential),
        insuplc_admdvs=insuplc_admdvs,
        treatment_admdvs=facts.mdtrtarea_admvs,
        service_date=facts.service_date,
        med_type=facts.med_type,
        chronic_disease=facts.chronic_disease,
        fixmedins_code=facts.fixmedins_code,
    )


def reimburse(
    session: Session, bill: BillToReimburse, terms: Terms, now: datetime, node_region: str
) -> api.ReimburseSelfPayBillResponse:
    """Settle the bill under the person's lock, move the accumulators, record it final; answer the result."""
    psn_no = terms.snapshot.psn_no
    key = application_id(bill.bill_id)
    person = ledger.lock_person(session, psn_no)
    if holds.state_of(session, key) is not None:
        raise already_reimbursed(bill.bill_id)
    before = ledger.accumulators(session, psn_no, bill.year)
    try:
        settled = settle_classified(
            bill.visit, person_from_snapshot(terms.snapshot, False, 0), terms.policy, bill.items, before
        )
    except DomainError as error:
        raise proto_paths(error, "bill.lines") from None
    ledger.move(session, person, bill.year, before, settled.changes, 0)
    try:
        holds.record(
            session,
            {
                "request_id": key,
                "kind": ApplicationKind.MANUAL_REIMBURSEMENT.value,
                "state": ApplicationState.CONFIRMED.value,
                "psn_no": psn_no,
                "year": bill.year,
                "setl_id": bill.bill_id,
                "policy_version": terms.policy_version,
                "changes": [
                    [change.kind.value, change.key, to_fen(change.delta)] for change in settled.changes
                ],
                "account_delta_fen": 0,
                "medfee_sumamt_fen": to_fen(settled.medfee_sumamt),
                "fund_pay_sumamt_fen": to_fen(settled.fund_pay_sumamt),
                "acct_pay_fen": 0,
                "psn_cash_pay_fen": to_fen(settled.psn_cash_pay),
                "created_at": now,
                "confirmed_at": now,
                "origin_admdvs": node_region,
                "resolve_attempts": 0,
            },
        )
    except holds.AlreadyApplied:
        raise already_reimbursed(bill.bill_id) from None
    result = settlement_result_to_proto(settled, bill.year, bill.bill.catalogue_version, terms.policy_version)
    return api.ReimburseSelfPayBillResponse(
        result=result, person=terms.snapshot, bill_id=bill.bill_id, policy_version=terms.policy_version
    )
