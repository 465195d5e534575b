"""GetBill at the treatment node: the whole bill of a settlement or a self-pay bill, one record every office reads.

A settlement's bill is its visit, the visit's lines with the classification they were settled
with, and the settlement (totals, fund split, accumulator changes, explanation). A self-pay
bill's lines were never classified, so they are classified now with the catalogue in force on
its service date, as a settlement's would have been (:mod:`~yidi_services.settlement.treatment.catalogue`).

Who reads is decided here, against the record, failing closed (:func:`ensure_may_read`).
The insured place's node also gets a self-pay bill's credential unmasked: it identifies the
person by it to reimburse the bill, and never shows it to its operators.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from yidi.settlement.v1 import insured_settlement_service_pb2 as api
from yidi.settlement.v1 import settlement_pb2
from yidi.type.v1 import person_pb2, visit_pb2
from yidi_core.codes import check_region
from yidi_core.errors import DomainError, invalid
from yidi_runtime.config import region_contains
from yidi_runtime.db import Database, row_by_key
from yidi_runtime.identity import CallerRole, Principal
from yidi_services.settlement.treatment import bills, fees, visits
from yidi_services.settlement.treatment.catalogue import classify, fee_items
from yidi_services.settlement.treatment.checks import RECORD_ID_LENGTH
from yidi_services.settlement.treatment.models import SelfPayBillRow, SettlementRow, VisitRow
from yidi_services.settlement.treatment.peers import TreatmentPeers
from yidi_services.settlement.treatment.records import find, settlement_message


@dataclass(frozen=True)
class Owners:
    """Whose a record is: the institution that made it, the treatment region, the insured region."""

    fixmedins_code: str
    mdtrtarea_admvs: str
    insuplc_admdvs: str


def bill_key(request: api.GetBillRequest) -> tuple[str, str]:
    """The key field set and its value: a record id, which starts with its treatment node's region."""
    field = request.WhichOneof("key")
    value = getattr(request, field).strip() if field else ""
    if field is None or len(value) != RECORD_ID_LENGTH:
        raise invalid(
            "INVALID_ARGUMENT",
            field or "key",
            f"name the bill by a {RECORD_ID_LENGTH}-character setl_id or bill_id",
        )
    check_region(value[:6], field)
    return field, value


def _sees_everything_here(principal: Principal, node_region: str) -> bool:
    """Operators at this node and nodes above it may read any record here (and learn what is missing)."""
    if principal.role is CallerRole.DEVELOPER:
        return True
    return principal.role in (CallerRole.OPERATOR, CallerRole.NODE) and region_contains(
        principal.region, node_region
    )


def ensure_may_read(principal: Principal, owners: Owners) -> None:
    """PERMISSION_DENIED_REGION unless ``principal`` may read a record of ``owners``.

    The institution that made it; an operator or a node whose region holds the record's
    treatment or insured region (an operator reaches this node only within their region, so
    an insured region's operator reads through their own node, which asks as itself).
    """
    role, region = principal.role, principal.region
    if role is CallerRole.DEVELOPER:
        return
    if role is CallerRole.INSTITUTION:
        allowed = principal.name == owners.fixmedins_code
    else:
        allowed = role in (CallerRole.OPERATOR, CallerRole.NODE) and any(
            region_contains(region, owner) for owner in (owners.mdtrtarea_admvs, owners.insuplc_admdvs)
        )
    if not allowed:
        raise DomainError(
            "PERMISSION_DENIED_REGION",
            f"{principal.subject} may not read this bill: it is neither its institution's nor of its region",
            metadata={"caller": principal.subject},
        )


def _missing(principal: Principal, node_region: str, field: str, value: str) -> DomainError:
    """NOT_FOUND for a reader who may read everything here; to anyone else, the refusal it would get."""
    if _sees_everything_here(principal, node_region):
        return DomainError("NOT_FOUND", f"no {field} {value!r} on this node", metadata={field: value})
    return DomainError(
        "PERMISSION_DENIED_REGION",
        f"{principal.subject} may not read bills of node {node_region}",
        metadata={"caller": principal.subject},
    )


class WholeBills:
    """The treatment node's answers to GetBill."""

    def __init__(self, database: Database, peers: TreatmentPeers) -> None:
        self._database = database
        self._peers = peers
        self._region = peers.region

    def read(self, request: api.GetBillRequest, principal: Principal) -> api.Bill:
        """The bill ``request`` names, if ``principal`` may read it."""
        field, value = bill_key(request)
        if field == "setl_id":
            with self._database.unit_of_work() as uow:
                return self._settled(uow.session, value, principal)
        with self._database.unit_of_work() as uow:
            row = row_by_key(uow.session, SelfPayBillRow, value)
            if row is None:
                raise _missing(principal, self._region, field, value)
            view = bills.view(row)
            ensure_may_read(
                principal, Owners(row.fixmedins_code, view.facts.mdtrtarea_admvs, row.insuplc_admdvs)
            )
            bill = api.Bill(self_pay_bill=view)
            visit = row_by_key(uow.session, VisitRow, row.mdtrt_id) if row.mdtrt_id else None
            if visit is not None:  # the visit direct settlement was tried for, settled since or not
                bill.visit.CopyFrom(visits.visit_message(uow.session, visit))
            if principal.role is CallerRole.DEVELOPER or (
                principal.role is CallerRole.NODE and region_contains(principal.region, row.insuplc_admdvs)
            ):
                bill.person_credential.CopyFrom(
                    person_pb2.Credential(
                        mdtrt_cert_type=row.mdtrt_cert_type,
                        mdtrt_cert_no=row.mdtrt_cert_no,
                        card_sn=row.card_sn,
                    )
                )
        facts = _bill_facts(bill.self_pay_bill)
        classified = classify(
            self._peers, facts, fee_items(bill.self_pay_bill.items, "bill.items", one_call=False)
        )
        bill.facts.CopyFrom(facts)
        bill.catalogue_version = classified.catalogue_version
        bill.lines.extend(
            api.BillLine(item=item, classification=result)
            for item, result in zip(bill.self_pay_bill.items, classified.results, strict=True)
        )
        return bill

    def _settled(self, session: Session, setl_id: str, principal: Principal) -> api.Bill:
        row: SettlementRow | None = find(session, setl_id=setl_id)
        if row is None:
            raise _missing(principal, self._region, "setl_id", setl_id)
        ensure_may_read(principal, Owners(row.fixmedins_code, row.mdtrtarea_admvs, row.insuplc_admdvs))
        settlement = settlement_message(row)
        visit = row_by_key(session, VisitRow, row.mdtrt_id)
        assert visit is not None  # a settlement is recorded with its visit, which is never deleted
        uploaded = {item.feedetl_sn: item for item in fees.active_items(session, row.mdtrt_id)}
        lines = [
            api.BillLine(item=uploaded.get(line.feedetl_sn), classification=line)
            for line in settlement.result.items  # the lines as settled, each with the line uploaded
        ]
        message = visits.visit_message(session, visit)
        return api.Bill(
            settlement=settlement,
            visit=message,
            lines=lines,
            catalogue_version=settlement.result.catalogue_version,
            facts=message.facts,
        )


def _bill_facts(bill: settlement_pb2.SelfPayBill) -> visit_pb2.VisitFacts:
    """The facts a self-pay bill's lines are classified for: its own, dated by the bill when they carry no date."""
    facts = visit_pb2.VisitFacts()
    facts.CopyFrom(bill.facts)
    if not facts.HasField("service_date"):
        facts.service_date.CopyFrom(bill.service_date)
    return facts
