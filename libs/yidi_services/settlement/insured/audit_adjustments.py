"""A treatment place's large-bill audit adjustments (大额协查核减), as the insured node keeps them.

The treatment region's operators disallowed part of a settlement's fund payment: the fund
recovers it from the hospital through the next clearing (a clawback at the national node).
Here it is recorded against the application, and only recorded: the patient paid their
share under the policy and keeps it, so the person's accumulators and account are not
rewritten. The adjustment arrives once its settlement's confirmation has (one outbox queue,
in order); it is recorded even if the settlement was reverted since, as the national node
returns such a clawback with the reversal.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from yidi.settlement.v1 import audit_case_service_pb2 as api
from yidi_codec.fields import Violations
from yidi_core.errors import DomainError, invalid
from yidi_runtime.paging import bad_token, decode_token, encode_token, page_size
from yidi_runtime.wire import as_utc, timestamp_message
from yidi_services.settlement.insured.holds import check_origin
from yidi_services.settlement.insured.models import ApplicationRow, AuditAdjustmentRow

MAX_REASON = 200


def check(request: api.RecordAuditAdjustmentRequest) -> None:
    """Every bad field of an adjustment named at once."""
    problems = Violations()
    for field, limit in (
        ("request_id", 64),
        ("original_request_id", 64),
        ("setl_id", 40),
        ("reason", MAX_REASON),
    ):
        value = getattr(request, field).strip()
        if not value or len(value) > limit:
            problems.add(invalid("INVALID_ARGUMENT", field, f"is required, at most {limit} characters"))
    if request.disallowed_fen <= 0:
        problems.add(invalid("INVALID_ARGUMENT", "disallowed_fen", "must be positive"))
    problems.raise_any()


def record(session: Session, request: api.RecordAuditAdjustmentRequest, origin: str, now: datetime) -> None:
    """Record the adjustment against the application the origin node applied (never past its fund payment)."""
    application = session.get(ApplicationRow, request.original_request_id)
    if application is None or application.setl_id != request.setl_id:
        raise DomainError(
            "NOT_FOUND",
            f"no settlement {request.setl_id} applied as {request.original_request_id} here",
            metadata={"setl_id": request.setl_id},
        )
    check_origin(application, origin)
    if request.disallowed_fen > application.fund_pay_sumamt_fen:
        raise invalid(
            "INVALID_ARGUMENT",
            "disallowed_fen",
            f"exceeds the fund payment of {request.setl_id}: {application.fund_pay_sumamt_fen} fen",
        )
    session.add(
        AuditAdjustmentRow(
            request_id=request.request_id,
            application_request_id=application.request_id,
            setl_id=application.setl_id,
            psn_no=application.psn_no,
            treatment_admdvs=origin,
            disallowed_fen=request.disallowed_fen,
            reason=request.reason.strip(),
            recorded_at=now,
        )
    )


def listed(session: Session, request: api.ListAuditAdjustmentsRequest) -> api.ListAuditAdjustmentsResponse:
    """One page of the adjustments recorded here, in order."""
    limit = page_size(request.page_size)
    setl_id = request.setl_id.strip()
    last = decode_token(request.page_token, {"setl_id": setl_id}, 1)
    statement = select(AuditAdjustmentRow).order_by(AuditAdjustmentRow.seq).limit(limit + 1)
    if setl_id:
        statement = statement.where(AuditAdjustmentRow.setl_id == setl_id)
    if last is not None:
        if not last[0].isdigit():
            raise bad_token()
        statement = statement.where(AuditAdjustmentRow.seq > int(last[0]))
    rows = list(session.scalars(statement))
    page = rows[:limit]
    return api.ListAuditAdjustmentsResponse(
        adjustments=[
            api.AuditAdjustment(
                setl_id=row.setl_id,
                psn_no=row.psn_no,
                treatment_admdvs=row.treatment_admdvs,
                disallowed_fen=row.disallowed_fen,
                reason=row.reason,
                record_time=timestamp_message(as_utc(row.recorded_at)),
            )
            for row in page
        ],
        next_page_token=encode_token([str(page[-1].seq)], {"setl_id": setl_id}) if len(rows) > limit else "",
    )
