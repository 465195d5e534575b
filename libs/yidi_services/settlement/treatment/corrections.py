"""Correction (冲正, 2601): whatever became of the original call, afterwards it has no effect.

The HIS names the call whose fate it does not know (``omsgid``) and what it was:

- a Settle that was recorded is reversed like a refund (outcome REVERSED, with the
  reversing record); one that was not is barred here first (its Settle is refused CORRECTED
  for ever) and then reverted at the insured node, which voids a hold it may have made or
  leaves a tombstone that refuses it (REVERSED if a hold was undone, else NOTHING_TO_UNDO).
  The bar is committed before the insured node is asked, so a Settle racing the correction
  can never record afterwards; a correction retried after an unreachable insured node
  finds its own bar and asks again;
- a RegisterVisit or UploadFeeItems that took effect is undone locally (the visit
  cancelled, the upload's lines cancelled) unless the visit is settled; one that did not is
  barred.

A second correction of the same original answers ALREADY_CORRECTED. A ReverseSettlement is
not corrected: it is idempotent, so the HIS sends it again to learn its outcome.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from yidi.settlement.v1 import settlement_service_pb2 as api
from yidi_core.errors import invalid
from yidi_runtime.db import Database
from yidi_runtime.settlement_keys import derived_id
from yidi_runtime.wire import Clock
from yidi_services.settlement.treatment.checks import Caller, check_request_id
from yidi_services.settlement.treatment.fees import cancel_upload
from yidi_services.settlement.treatment.models import Outcome, OutcomeRow, SettlementRow, VisitState
from yidi_services.settlement.treatment.outcomes import Requests, bar, retried
from yidi_services.settlement.treatment.peers import TreatmentPeers
from yidi_services.settlement.treatment.records import find, reversal_of, settlement_message
from yidi_services.settlement.treatment.settle import SETTLE, Settlements
from yidi_services.settlement.treatment.visits import already_settled, load

CORRECT = "Correct"
_LOCAL_OPERATIONS = {
    api.CORRECTED_OPERATION_REGISTER_VISIT: "RegisterVisit",
    api.CORRECTED_OPERATION_UPLOAD_FEE_ITEMS: "UploadFeeItems",
}


class Corrections:
    """Corrects the calls of this node's institutions."""

    def __init__(
        self,
        database: Database,
        peers: TreatmentPeers,
        clock: Clock,
        requests: Requests,
        settlements: Settlements,
    ) -> None:
        self._database = database
        self._peers = peers
        self._clock = clock
        self._requests = requests
        self._settlements = settlements

    def correct(self, request: api.CorrectRequest, caller: Caller) -> api.CorrectResponse:
        """Correct the call ``omsgid`` once per correction request id."""
        request_id = check_request_id(request.request_id)
        replayed = self._requests.replayed(caller.owner, request_id, CORRECT, request, api.CorrectResponse)
        if replayed is not None:
            return replayed
        check_request_id(request.omsgid, "omsgid")
        if request.oinfno == api.CORRECTED_OPERATION_SETTLE:
            return self._settlement(request, caller)
        if request.oinfno == api.CORRECTED_OPERATION_REVERSE_SETTLEMENT:
            raise invalid(
                "INVALID_ARGUMENT",
                "oinfno",
                "a reversal is not corrected: send the ReverseSettlement again with the same request_id "
                "(it takes effect once) to learn its outcome",
            )
        operation = _LOCAL_OPERATIONS.get(request.oinfno)  # type: ignore[call-overload]
        if operation is None:
            raise invalid("INVALID_ARGUMENT", "oinfno", "name the original operation")
        return self._requests.run_once(
            caller.owner,
            request_id,
            CORRECT,
            request,
            api.CorrectResponse,
            lambda session: self._undo_locally(session, request, operation, caller),
        )

    def _undo_locally(
        self, session: Session, request: api.CorrectRequest, operation: str, caller: Caller
    ) -> api.CorrectResponse:
        outcome = bar(session, caller.owner, request.omsgid, operation, request.request_id, self._clock())
        _ensure_operation(outcome, operation)
        if outcome.outcome == Outcome.CORRECTED:
            return _barred(outcome, request.request_id)
        visit = load(session, outcome.mdtrt_id or "", caller, lock=True)
        if visit.state == VisitState.SETTLED:
            raise already_settled(visit)
        if operation == "RegisterVisit":
            visit.state = VisitState.CANCELLED
        else:
            cancel_upload(session, visit.mdtrt_id, request.omsgid)
        outcome.outcome, outcome.correction_id = Outcome.CORRECTED, request.request_id
        return api.CorrectResponse(outcome=api.CORRECTION_OUTCOME_REVERSED)

    def _settlement(self, request: api.CorrectRequest, caller: Caller) -> api.CorrectResponse:
        request_id, omsgid = request.request_id, request.omsgid

        def decide() -> tuple[OutcomeRow, SettlementRow | None]:
            with self._database.unit_of_work(write=True) as uow:
                outcome = bar(uow.session, caller.owner, omsgid, SETTLE, request_id, self._clock())
                _ensure_operation(outcome, SETTLE)
                if outcome.outcome == Outcome.APPLIED:
                    original = find(uow.session, medins_setl_id=omsgid, fixmedins_code=caller.fixmedins_code)
                    uow.session.expunge_all()
                    return outcome, original
                if outcome.correction_id == request_id and not caller.insuplc_admdvs:
                    raise invalid(
                        "INVALID_ARGUMENT",
                        "envelope.insuplc_admdvs",
                        "is required to correct a settlement this node never recorded",
                    )
                uow.commit()
                return outcome, None

        outcome, original = retried(decide)
        if original is not None:
            return self._recorded(request, caller, original)
        if outcome.correction_id != request_id:
            answer = _barred(outcome, request_id)
        else:
            reverted = self._settlements.revert_application(
                caller.insuplc_admdvs,
                caller.key(request_id),
                derived_id(caller.key(omsgid), "apply"),
                request.psn_no,
            )
            answer = api.CorrectResponse(
                outcome=api.CORRECTION_OUTCOME_REVERSED
                if reverted.answer.reverted
                else api.CORRECTION_OUTCOME_NOTHING_TO_UNDO
            )

            def kept(session: Session) -> api.CorrectResponse:
                self._settlements.receipts.keep(session, reverted.request, reverted.answer)
                return answer

            return self._requests.run_once(
                caller.owner, request_id, CORRECT, request, api.CorrectResponse, kept
            )
        return self._requests.run_once(
            caller.owner, request_id, CORRECT, request, api.CorrectResponse, lambda _: answer
        )

    def _recorded(
        self, request: api.CorrectRequest, caller: Caller, original: SettlementRow
    ) -> api.CorrectResponse:
        """The settlement took effect: reverse it, unless it already was (then ALREADY_CORRECTED)."""
        caller.owns(original.fixmedins_code, f"settlement {original.setl_id}")
        request_id = request.request_id
        if original.reversed:

            def already(session: Session) -> api.CorrectResponse:
                reversal = reversal_of(session, original.setl_id)
                return api.CorrectResponse(
                    outcome=api.CORRECTION_OUTCOME_ALREADY_CORRECTED,
                    reversal=settlement_message(reversal) if reversal is not None else None,
                )

            return self._requests.run_once(
                caller.owner, request_id, CORRECT, request, api.CorrectResponse, already
            )
        undone = self._settlements.revert(original, request_id)
        return self._requests.run_once(
            caller.owner,
            request_id,
            CORRECT,
            request,
            api.CorrectResponse,
            lambda session: api.CorrectResponse(
                outcome=api.CORRECTION_OUTCOME_REVERSED,
                reversal=settlement_message(
                    self._settlements.record_reversal(session, original.setl_id, request_id, undone)
                ),
            ),
        )


def _ensure_operation(outcome: OutcomeRow, operation: str) -> None:
    if outcome.operation != operation:
        raise invalid(
            "INVALID_ARGUMENT",
            "oinfno",
            f"request {outcome.request_id} was a {outcome.operation}, not a {operation}",
        )


def _barred(outcome: OutcomeRow, request_id: str) -> api.CorrectResponse:
    """A barred original: by this correction (nothing to undo) or by an earlier one."""
    if outcome.correction_id == request_id:
        return api.CorrectResponse(outcome=api.CORRECTION_OUTCOME_NOTHING_TO_UNDO)
    return api.CorrectResponse(outcome=api.CORRECTION_OUTCOME_ALREADY_CORRECTED)
