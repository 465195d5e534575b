"""Receipts (回执): what the insured node signed for the sealed messages the treatment node sent it.

The treatment node seals ApplySettlement, ConfirmSettlement and RevertSettlement; the insured
node answers each with a receipt, its own seal over the answer, which names the digest of the
request it answers (:meth:`yidi_runtime.integrity.NodeIntegrity.receipt`). The insured node
keeps its answer (receipt included) in its request log; the treatment node checks the
receipt — signed by a node whose region holds the insured region, for this very request —
and keeps the answer here, in the same transaction as the record it concerns. In a dispute
each side can then show what the other signed. Nodes run insecure for development sign and
keep nothing.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message
from sqlalchemy.orm import Session

from yidi.settlement.v1 import insured_settlement_service_pb2 as api
from yidi_runtime.db import insert_all_if_absent, insert_if_absent
from yidi_runtime.integrity import NodeIntegrity, Origin
from yidi_runtime.logs import get_logger
from yidi_runtime.outbox import QueuedMessage, method_path
from yidi_runtime.wire import Clock
from yidi_services.settlement.outbox_batches import CONFIRM_SETTLEMENT
from yidi_services.settlement.treatment.models import ReceiptRow

_CONFIRM_PATH = method_path(CONFIRM_SETTLEMENT)


def _method_name(request: Message) -> str:
    return request.DESCRIPTOR.name.removesuffix("Request")


class Receipts:
    """Checks and keeps the receipts of the insured side's answers."""

    def __init__(self, integrity: NodeIntegrity, clock: Clock) -> None:
        self._integrity = integrity
        self._clock = clock
        self._log = get_logger(service="settlement")

    def checked(self, request: Message, answer: Message, insured_region: str) -> None:
        """Refuse (SIGNATURE_INVALID) an answer to a sealed request without a valid receipt from the insured side."""
        self._integrity.check_receipt(
            _method_name(request),
            answer,
            request.payload_signature,  # type: ignore[attr-defined]
            Origin(within={"insuplc_admdvs": insured_region}),
        )

    def keep(self, session: Session, request: Message, answer: Message) -> None:
        """Store a receipted answer with the caller's transaction (the first per request; nothing without a receipt)."""
        if answer.HasField("receipt"):
            insert_if_absent(session, ReceiptRow, self._row(request, answer))

    def _row(self, request: Message, answer: Message) -> dict[str, Any]:
        return {
            "request_id": request.request_id,  # type: ignore[attr-defined]
            "method": _method_name(request),
            "signer_admdvs": answer.receipt.signer_admdvs,  # type: ignore[attr-defined]
            "answer": answer.SerializeToString(deterministic=True),
            "received_at": self._clock(),
        }

    def on_delivered(self, session: Session, delivered: list[tuple[QueuedMessage, bytes]]) -> None:
        """The outbox delivered messages: keep the receipts of the confirmations that check out, in one statement."""
        rows = []
        for message, answer in delivered:
            if message.method != _CONFIRM_PATH or not answer:
                continue
            request = api.ConfirmSettlementRequest.FromString(message.payload)
            response = api.ConfirmSettlementResponse.FromString(answer)
            try:
                self.checked(request, response, message.destination)
            except Exception as refusal:  # the confirmation took effect; only its receipt is wanting
                self._log.error(
                    "a confirmation's receipt does not check out: not kept",
                    message_id=message.message_id,
                    error=str(refusal),
                )
                continue
            if response.HasField("receipt"):
                rows.append(self._row(request, response))
        if rows:
            insert_all_if_absent(session, ReceiptRow, rows)
