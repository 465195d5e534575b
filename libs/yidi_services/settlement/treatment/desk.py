"""Before a settlement: the person verified, the visit opened, discharged or cancelled, its lines uploaded.

Each handler takes a checked command (:mod:`~yidi_services.settlement.treatment.commands`) and
answers the response it stores in the request log with its effect, so a repeat is answered
with the same bytes. Remote checks (the person, the institution, the catalogue) happen before
the local transaction, so an unreachable peer leaves nothing half-written here.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from yidi.settlement.v1 import insured_settlement_service_pb2 as insured_api
from yidi.settlement.v1 import settlement_service_pb2 as api
from yidi.type.v1 import person_pb2
from yidi_runtime.db import Database
from yidi_runtime.peers import alongside
from yidi_runtime.wire import Clock, date_message
from yidi_services.settlement.treatment import bills, commands, fees, visits
from yidi_services.settlement.treatment.catalogue import classify
from yidi_services.settlement.treatment.checks import record_id
from yidi_services.settlement.treatment.outcomes import Requests, claim, reading
from yidi_services.settlement.treatment.peers import TreatmentPeers


class Desk:
    """The HIS's calls that prepare a settlement, and its self-pay bills."""

    def __init__(self, database: Database, peers: TreatmentPeers, requests: Requests, clock: Clock) -> None:
        self._database = database
        self._peers = peers
        self._requests = requests
        self._clock = clock
        self._region = peers.region

    def verify_person(self, command: commands.VerifyPerson) -> person_pb2.PersonSnapshot:
        """The person as the insured node knows them, and whether they may settle the planned visit."""
        who = command.caller
        answer = self._peers.insured(
            command.insuplc_admdvs,
            lambda stub: stub.ResolvePerson,
            insured_api.ResolvePersonRequest(
                route=self._peers.route(command.insuplc_admdvs),
                credential=command.credential,
                treatment_admdvs=who.mdtrtarea_admvs,
                service_date=date_message(command.service_date),
                med_type=command.med_type,
                emergency=command.emergency,
                chronic_disease=command.chronic_disease,
                fixmedins_code=who.fixmedins_code,
            ),
        )
        return answer.person

    def register_visit(self, command: commands.RegisterVisit) -> api.RegisterVisitResponse:
        """Open a visit once the person and the institution check out."""
        call, visit = command.call, command.visit
        replayed = self._requests.replayed(call, api.RegisterVisitResponse)
        if replayed is not None:
            return replayed
        person = alongside(
            lambda: self._peers.ensure_person(
                visit.facts, visit.insuplc_admdvs, command.credential, visit.psn_no
            )
        )
        checked = self._peers.check_institution(visit.facts, visit.insuplc_admdvs, self._clock())
        person.result()
        if not visit.facts.institution_level:
            visit.facts.institution_level = checked.institution.level
        mdtrt_id = record_id(self._region, command.caller.key(call.request_id))

        def effect(session: Session) -> api.RegisterVisitResponse:
            now = self._clock()
            claim(session, call.owner, call.request_id, call.method, mdtrt_id, now)
            row = visits.register(session, mdtrt_id, call.request_id, visit, now)
            session.flush()
            return api.RegisterVisitResponse(visit=visits.visit_message(session, row))

        return self._requests.run_once(call, api.RegisterVisitResponse, effect)

    def discharge_visit(self, command: commands.DischargeVisit) -> api.DischargeVisitResponse:
        def effect(session: Session) -> api.DischargeVisitResponse:
            row = visits.load(session, command.mdtrt_id, command.caller, lock=True)
            visits.discharge(row, command.end_time, list(command.diagnoses))
            session.flush()
            return api.DischargeVisitResponse(visit=visits.visit_message(session, row))

        return self._requests.run_once(command.call, api.DischargeVisitResponse, effect)

    def cancel_visit(self, command: commands.CancelVisit) -> api.CancelVisitResponse:
        def effect(session: Session) -> api.CancelVisitResponse:
            row = visits.load(session, command.mdtrt_id, command.caller, lock=True)
            fees.ensure_no_part_settled(session, row.mdtrt_id)
            visits.cancel(row)
            session.flush()
            return api.CancelVisitResponse(visit=visits.visit_message(session, row))

        return self._requests.run_once(command.call, api.CancelVisitResponse, effect)

    def upload_fee_items(self, command: commands.UploadFeeItems) -> api.UploadFeeItemsResponse:
        """Classify the lines with the catalogue in force, then store them (a repeated line answers as stored)."""
        call = command.call
        replayed = self._requests.replayed(call, api.UploadFeeItemsResponse)
        if replayed is not None:
            return replayed
        with reading(self._database) as session:
            visit = visits.load(session, command.mdtrt_id, command.caller)
            visits.ensure_open(visit)
        fees.ensure_outside_lines_fit(command.lines, visit)
        classified = classify(self._peers, visits.facts_of(visit), list(command.items))

        def effect(session: Session) -> api.UploadFeeItemsResponse:
            now = self._clock()
            claim(session, call.owner, call.request_id, call.method, visit.mdtrt_id, now)
            row = visits.load(session, visit.mdtrt_id, command.caller, lock=True)
            visits.ensure_open(row)
            results = fees.store(session, row.mdtrt_id, call.request_id, command.lines, classified, now)
            return api.UploadFeeItemsResponse(results=results, catalogue_version=classified.catalogue_version)

        return self._requests.run_once(call, api.UploadFeeItemsResponse, effect)

    def cancel_fee_items(self, command: commands.CancelFeeItems) -> api.CancelFeeItemsResponse:
        def effect(session: Session) -> api.CancelFeeItemsResponse:
            row = visits.load(session, command.mdtrt_id, command.caller, lock=True)
            visits.ensure_open(row)
            count = fees.cancel(session, row.mdtrt_id, list(command.serials), command.everything)
            return api.CancelFeeItemsResponse(cancelled_count=count)

        return self._requests.run_once(command.call, api.CancelFeeItemsResponse, effect)

    def upload_self_pay_bill(self, command: commands.UploadSelfPayBill) -> api.UploadSelfPayBillResponse:
        """Keep the bill under an id derived from the institution's request id.

        A bill naming a visit must name the caller's open one, which then counts as reimbursed
        manually (:mod:`~yidi_services.settlement.treatment.direct_rate`).
        """
        call = command.call
        bill_id = record_id(self._region, command.caller.key(call.request_id))

        def effect(session: Session) -> api.UploadSelfPayBillResponse:
            if command.bill.mdtrt_id:
                visit = visits.load(session, command.bill.mdtrt_id, command.caller, lock=True)
                visits.ensure_open(visit)
                visit.self_pay_bill_id = bill_id
            return api.UploadSelfPayBillResponse(
                bill=bills.store(session, bill_id, call.request_id, command.bill, self._clock())
            )

        return self._requests.run_once(call, api.UploadSelfPayBillResponse, effect)
