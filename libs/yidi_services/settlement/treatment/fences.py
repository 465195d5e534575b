"""FenceSettlement at the treatment node: what became of a settlement whose hold timed out at the insured node.

The treatment node's local commit decides a settlement (DESIGN.md principle 9). When a hold
times out the insured node asks here instead of guessing: a Settle that committed is
RECORDED (its settlement id goes back, and the hold is confirmed); one that did not is
fenced first — its outcome row claims the request id as FENCED in the same way a correction
bars it — so that it can never commit afterwards, and only then is it NOT_RECORDED (the hold
is voided). The outcome row's primary key decides a race between the fence and a Settle
committing at the same moment: whichever inserts first wins, and the other sees it.

A fence names the node that set it; it binds a Settle only for a visit of a person that
node insures (:func:`~yidi_services.settlement.treatment.outcomes.ensure_not_barred`), so no node can stop the
settlements of persons it does not insure.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from yidi.settlement.v1 import insured_settlement_service_pb2 as api
from yidi_runtime.settlement_keys import split_key
from yidi_services.settlement.treatment.checks import institution_owner
from yidi_services.settlement.treatment.commands import Corrected
from yidi_services.settlement.treatment.models import Outcome, OutcomeRow, SettlementRow
from yidi_services.settlement.treatment.outcomes import Raced
from yidi_services.settlement.treatment.records import find


def _recorded(session: Session, code: str, msgid: str) -> SettlementRow | None:
    return find(session, medins_setl_id=msgid, fixmedins_code=code)


def fence(
    session: Session, settlement_key: str, fenced_by: str, now: datetime
) -> api.FenceSettlementResponse:
    """The outcome of the institution's Settle named by ``settlement_key``, fencing it when it never committed."""
    code, msgid = split_key(settlement_key)
    owner = institution_owner(code)
    row = session.get(OutcomeRow, (owner, msgid), with_for_update=True)
    if row is None:
        session.add(
            OutcomeRow(
                owner=owner,
                request_id=msgid,
                operation=Corrected.SETTLE,
                outcome=Outcome.FENCED,
                fenced_by=fenced_by,
                created_at=now,
            )
        )
        try:
            session.flush()
        except IntegrityError:
            raise Raced(msgid) from None
        return api.FenceSettlementResponse(outcome=api.SETTLEMENT_OUTCOME_NOT_RECORDED)
    recorded = _recorded(session, code, msgid) if row.outcome == Outcome.APPLIED else None
    if recorded is None:
        return api.FenceSettlementResponse(outcome=api.SETTLEMENT_OUTCOME_NOT_RECORDED)
    return api.FenceSettlementResponse(outcome=api.SETTLEMENT_OUTCOME_RECORDED, setl_id=recorded.setl_id)
