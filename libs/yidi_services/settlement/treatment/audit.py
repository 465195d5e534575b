"""The large-bill audit (大额协查) at the treatment node: the queue, and an operator's decision.

Settle queues a case for every audit-flagged settlement (:func:`queue`), due
``AUDIT_WORKING_DAYS`` working days later. An operator of the treatment region decides it
once: ACCEPT leaves the bill as settled; ADJUST disallows part of the fund payment. The
decision, and for an adjustment its two messages, commit in one transaction through the
outbox, so neither is lost:

* ``RecordAuditAdjustment`` to the insured node, which records it against the settlement.
  The person's accumulators and account stay as they are: the fund recovers the money from
  the hospital, the patient's share is unchanged.
* ``RecordClawback`` to the national node, which carries it into the next clearing as an
  adjustment line (the treatment province gives back, the insured province owes less).

Both are checked here first (the settlement not reversed, the amount within its fund
payment) because a message the receiver refuses would hold its destination's queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yidi.clearing.v1 import clearing_service_pb2 as clearing_api
from yidi.settlement.v1 import audit_case_service_pb2 as api
from yidi_codec.fields import Violations
from yidi_core.codes import NATIONAL_REGION
from yidi_core.errors import DomainError, invalid
from yidi_core.placement import journaled_nationally
from yidi_runtime.integrity import NodeIntegrity
from yidi_runtime.outbox import Outbox
from yidi_runtime.paging import bad_token, decode_token, encode_token, page_size
from yidi_runtime.settlement_keys import derived_id
from yidi_runtime.wire import as_utc, china_day, date_message, timestamp_message
from yidi_runtime.working_days import WorkingCalendar
from yidi_services.settlement.insured.forwarding import ROUTED
from yidi_services.settlement.treatment.models import AuditCaseRow, AuditState, SettlementRow
from yidi_services.settlement.treatment.peers import TreatmentPeers
from yidi_services.settlement.treatment.records import Recorded, ensure_not_reversed, find

AUDIT_WORKING_DAYS = 10
"""Working days the treatment region's operators have to decide a case."""
MAX_REASON = 200

_AUDIT_SERVICE = api.DESCRIPTOR.services_by_name["AuditCaseService"]
RECORD_AUDIT_ADJUSTMENT = _AUDIT_SERVICE.methods_by_name["RecordAuditAdjustment"]
RECORD_CLAWBACK = clearing_api.DESCRIPTOR.services_by_name["ClearingService"].methods_by_name[
    "RecordClawback"
]

_STATES = {
    AuditState.OPEN: api.AUDIT_CASE_STATE_OPEN,
    AuditState.ACCEPTED: api.AUDIT_CASE_STATE_ACCEPTED,
    AuditState.ADJUSTED: api.AUDIT_CASE_STATE_ADJUSTED,
}
_WIRE_STATES = {wire: state for state, wire in _STATES.items()}


def queue(session: Session, settlement: Recorded, now: datetime, calendar: WorkingCalendar) -> None:
    """Open the audit case of an audit-flagged settlement just recorded, due in ``AUDIT_WORKING_DAYS``."""
    session.add(
        AuditCaseRow(
            setl_id=settlement.setl_id,
            mdtrt_id=settlement.mdtrt_id,
            fixmedins_code=settlement.fixmedins_code,
            insuplc_admdvs=settlement.insuplc_admdvs,
            medfee_sumamt_fen=settlement.medfee_sumamt_fen,
            created_at=now,
            state=AuditState.OPEN.value,
            due_date=calendar.add(china_day(now), AUDIT_WORKING_DAYS),
        )
    )


@dataclass(frozen=True)
class Decision:
    """DecideAuditCase, checked."""

    setl_id: str
    adjust: bool
    disallowed_fen: int
    reason: str


def decision_of(request: api.DecideAuditCaseRequest) -> Decision:
    """The request's decision, every bad field named at once."""
    problems = Violations()
    setl_id = request.setl_id.strip()
    reason = request.reason.strip()
    if not setl_id or len(setl_id) > 30:
        problems.add(invalid("INVALID_ARGUMENT", "setl_id", "is required, at most 30 characters"))
    if len(reason) > MAX_REASON:
        problems.add(invalid("INVALID_ARGUMENT", "reason", f"must be at most {MAX_REASON} characters"))
    if request.decision == api.AUDIT_DECISION_ADJUST:
        if request.disallowed_fen <= 0:
            problems.add(
                invalid("INVALID_ARGUMENT", "disallowed_fen", "an adjustment disallows a positive amount")
            )
        if not reason:
            problems.add(invalid("INVALID_ARGUMENT", "reason", "an adjustment says why"))
    elif request.decision == api.AUDIT_DECISION_ACCEPT:
        if request.disallowed_fen:
            problems.add(invalid("INVALID_ARGUMENT", "disallowed_fen", "an acceptance disallows nothing"))
    else:
        problems.add(invalid("INVALID_ARGUMENT", "decision", "ACCEPT or ADJUST"))
    problems.raise_any()
    return Decision(setl_id, request.decision == api.AUDIT_DECISION_ADJUST, request.disallowed_fen, reason)


def _not_found(setl_id: str) -> DomainError:
    return DomainError(
        "NOT_FOUND", f"no audit case {setl_id[:30]!r} on this node", metadata={"setl_id": setl_id[:30]}
    )


class AuditCases:
    """The audit queue of this treatment node and the decisions on it."""

    def __init__(self, peers: TreatmentPeers, outbox: Outbox, integrity: NodeIntegrity) -> None:
        self._peers = peers
        self._outbox = outbox
        self._integrity = integrity

    def decide(
        self, session: Session, decision: Decision, operator: str, request_id: str, now: datetime
    ) -> api.AuditCase:
        """Decide an open case once (AUDIT_CASE_DECIDED after); an adjustment queues its two messages."""
        case = session.scalars(
            select(AuditCaseRow).where(AuditCaseRow.setl_id == decision.setl_id).with_for_update()
        ).one_or_none()
        if case is None:
            raise _not_found(decision.setl_id)
        if case.state != AuditState.OPEN.value:
            raise DomainError(
                "AUDIT_CASE_DECIDED",
                f"audit case {case.setl_id} is already {case.state}",
                metadata={"setl_id": case.setl_id, "state": case.state},
            )
        settlement = find(session, setl_id=case.setl_id, lock=True)
        if settlement is None:
            raise RuntimeError(f"audit case {case.setl_id} without its settlement")
        if decision.adjust:
            ensure_not_reversed(settlement)
            if decision.disallowed_fen > settlement.fund_pay_sumamt_fen:
                raise invalid(
                    "INVALID_ARGUMENT",
                    "disallowed_fen",
                    f"exceeds the fund payment of settlement {settlement.setl_id}: {settlement.fund_pay_sumamt_fen} fen",
                    metadata={"fund_pay_sumamt_fen": str(settlement.fund_pay_sumamt_fen)},
                )
            self._queue_adjustment(session, settlement, decision)
        case.state = (AuditState.ADJUSTED if decision.adjust else AuditState.ACCEPTED).value
        case.disallowed_fen = decision.disallowed_fen
        case.reason = decision.reason
        case.decided_by = operator
        case.decision_request_id = request_id
        case.decided_at = now
        session.flush()
        return case_message(case, settlement.fund_pay_sumamt_fen, china_day(now))

    def _queue_adjustment(self, session: Session, settlement: SettlementRow, decision: Decision) -> None:
        adjustment = api.RecordAuditAdjustmentRequest(
            request_id=derived_id(settlement.setl_id, "audit-adjustment"),
            route=self._peers.route(settlement.insuplc_admdvs),
            original_request_id=settlement.insured_request_id,
            setl_id=settlement.setl_id,
            disallowed_fen=decision.disallowed_fen,
            reason=decision.reason,
        )
        self._integrity.seal(adjustment, ROUTED)
        self._outbox.add(session, settlement.insuplc_admdvs, RECORD_AUDIT_ADJUSTMENT, adjustment)
        if journaled_nationally(settlement.pay_loc):
            clawback = clearing_api.RecordClawbackRequest(
                request_id=derived_id(settlement.setl_id, "audit-clawback"),
                msgid=settlement.medins_setl_id,
                amount_fen=decision.disallowed_fen,
                reason=f"大额协查 {settlement.setl_id}: {decision.reason}",
                fixmedins_code=settlement.fixmedins_code,
            )
            self._outbox.add(session, NATIONAL_REGION, RECORD_CLAWBACK, clawback)


def get(session: Session, setl_id: str, today: date) -> api.AuditCase:
    """One case by its settlement id."""
    if not setl_id.strip():
        raise invalid("INVALID_ARGUMENT", "setl_id", "is required")
    found = session.execute(
        select(AuditCaseRow, SettlementRow.fund_pay_sumamt_fen)
        .join(SettlementRow, SettlementRow.setl_id == AuditCaseRow.setl_id)
        .where(AuditCaseRow.setl_id == setl_id.strip())
    ).one_or_none()
    if found is None:
        raise _not_found(setl_id.strip())
    return case_message(found[0], found[1], today)


def list_cases(
    session: Session, request: api.ListAuditCasesRequest, today: date
) -> tuple[list[api.AuditCase], str]:
    """One page of the queue, oldest first, and the next page's token."""
    limit = page_size(request.page_size)
    if request.state and request.state not in _WIRE_STATES:
        raise invalid("INVALID_ARGUMENT", "state", f"unknown state {request.state}")
    query = {"state": str(request.state), "overdue_only": str(request.overdue_only), "today": str(today)}
    last = decode_token(request.page_token, query, 1)
    statement = (
        select(AuditCaseRow, SettlementRow.fund_pay_sumamt_fen)
        .join(SettlementRow, SettlementRow.setl_id == AuditCaseRow.setl_id)
        .order_by(AuditCaseRow.created_at, AuditCaseRow.setl_id)
        .limit(limit + 1)
    )
    if request.state:
        statement = statement.where(AuditCaseRow.state == _WIRE_STATES[request.state].value)
    if request.overdue_only:
        statement = statement.where(
            AuditCaseRow.state == AuditState.OPEN.value, AuditCaseRow.due_date < today
        )
    if last is not None:  # keyset after the last case listed, by its own queueing time
        after = session.scalar(select(AuditCaseRow.created_at).where(AuditCaseRow.setl_id == last[0]))
        if after is None:
            raise bad_token()
        statement = statement.where(
            (AuditCaseRow.created_at > after)
            | ((AuditCaseRow.created_at == after) & (AuditCaseRow.setl_id > last[0]))
        )
    rows = list(session.execute(statement))
    page = rows[:limit]
    token = ""
    if len(rows) > limit:
        tail = page[-1][0]
        token = encode_token([tail.setl_id], query)
    return [case_message(case, fund, today) for case, fund in page], token


def counts(session: Session, today: date) -> tuple[int, int]:
    """Open cases, and how many of them are past their due date (the gauges)."""
    open_state = AuditCaseRow.state == AuditState.OPEN.value
    opened = session.scalar(select(func.count()).where(open_state)) or 0
    overdue = session.scalar(select(func.count()).where(open_state, AuditCaseRow.due_date < today)) or 0
    return int(opened), int(overdue)


def case_message(case: AuditCaseRow, fund_pay_sumamt_fen: int, today: date) -> api.AuditCase:
    """A case on the wire."""
    state = AuditState(case.state)
    return api.AuditCase(
        setl_id=case.setl_id,
        mdtrt_id=case.mdtrt_id,
        fixmedins_code=case.fixmedins_code,
        insuplc_admdvs=case.insuplc_admdvs,
        medfee_sumamt_fen=case.medfee_sumamt_fen,
        fund_pay_sumamt_fen=fund_pay_sumamt_fen,
        state=_STATES[state],
        create_time=timestamp_message(as_utc(case.created_at)),
        due_date=date_message(case.due_date),
        overdue=state is AuditState.OPEN and case.due_date is not None and case.due_date < today,
        disallowed_fen=case.disallowed_fen,
        reason=case.reason,
        decided_by=case.decided_by,
        decide_time=timestamp_message(None if case.decided_at is None else as_utc(case.decided_at)),
    )
