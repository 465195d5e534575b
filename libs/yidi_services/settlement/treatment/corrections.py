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
from yidi_services.settlement.treatment import commands
from yidi_services.settlement.treatment.commands import Corrected
from yidi_services.settlement.treatment.fees import cancel_upload, ensure_no_part_settled
from yidi_services.settlement.treatment.models import Outcome, OutcomeRow, SettlementRow, VisitState
from yidi_services.settlement.treatment.outcomes import Requests, bar, retried
from yidi_services.settlement.treatment.peers import TreatmentPeers
from yidi_services.settlement.treatment.records import find, reversal_of, settlement_message
from yidi_services.settlement.treatment.settle import Settlements
from yidi_services.settlement.treatment.visits import already_settled, load


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

    def correct(self, command: commands.Correct) -> api.CorrectResponse:
        """Correct the call ``omsgid`` once per correction request id."""
        replayed = self._requests.replayed(command.call, api.CorrectResponse)
        if replayed is not None:
            return replayed
        if command.operation is Corrected.SETTLE:
            return self._settlement(command)
        return self._requests.run_once(
            command.call, api.CorrectResponse, lambda session: self._undo_locally(session, command)
        )

    def _undo_locally(self, session: Session, command: commands.Correct) -> api.CorrectResponse:
        caller, operation, request_id = command.caller, command.operation, command.call.request_id
        outcome = bar(session, caller.owner, command.omsgid, operation, request_id, self._clock())
        _ensure_operation(outcome, operation)
        if outcome.outcome == Outcome.CORRECTED:
            return _barred(outcome, request_id)
        visit = load(session, outcome.mdtrt_id or "", caller, lock=True)
        if visit.state == VisitState.SETTLED:
            raise already_settled(visit)
        ensure_no_part_settled(
            session, visit.mdtrt_id, None if operation is Corrected.REGISTER_VISIT else command.omsgid
        )
        if operation is Corrected.REGISTER_VISIT:
            visit.state = VisitState.CANCELLED
        else:
            cancel_upload(session, visit.mdtrt_id, command.omsgid)
        outcome.outcome, outcome.correction_id = Outcome.CORRECTED, request_id
        return api.CorrectResponse(outcome=api.CORRECTION_OUTCOME_REVERSED)

    def _settlement(self, command: commands.Correct) -> api.CorrectResponse:
        call, caller, omsgid = command.call, command.caller, command.omsgid
        request_id = call.request_id

        def decide() -> tuple[OutcomeRow, SettlementRow | None]:
            with self._database.unit_of_work(write=True) as uow:
                outcome = bar(uow.session, caller.owner, omsgid, Corrected.SETTLE, request_id, self._clock())
                _ensure_operation(outcome, Corrected.SETTLE)
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
            return self._recorded(command, original)
        if outcome.correction_id != request_id:
            answer = _barred(outcome, request_id)
        else:
            reverted = self._settlements.revert_application(
                caller.insuplc_admdvs,
                caller.key(request_id),
                derived_id(caller.key(omsgid), "apply"),
                command.psn_no,
            )
            answer = api.CorrectResponse(
                outcome=api.CORRECTION_OUTCOME_REVERSED
                if reverted.answer.reverted
                else api.CORRECTION_OUTCOME_NOTHING_TO_UNDO
            )

            def kept(session: Session) -> api.CorrectResponse:
                self._settlements.receipts.keep(session, reverted.request, reverted.answer)
                return answer

            return self._requests.run_once(call, api.CorrectResponse, kept)
        return self._requests.run_once(call, api.CorrectResponse, lambda _: answer)

    def _recorded(self, command: commands.Correct, original: SettlementRow) -> api.CorrectResponse:
        """The settlement took effect: reverse it, unless it already was (then ALREADY_CORRECTED)."""
        command.caller.owns(original.fixmedins_code, f"settlement {original.setl_id}")
        call = command.call
        request_id = call.request_id
        if original.reversed:

            def already(session: Session) -> api.CorrectResponse:
                reversal = reversal_of(session, original.setl_id)
                return api.CorrectResponse(
                    outcome=api.CORRECTION_OUTCOME_ALREADY_CORRECTED,
                    reversal=settlement_message(reversal) if reversal is not None else None,
                )

            return self._requests.run_once(call, api.CorrectResponse, already)
        undone = self._settlements.revert(original, request_id)
        return self._requests.run_once(
            call,
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
