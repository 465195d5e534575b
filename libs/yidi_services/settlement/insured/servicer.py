"""InsuredSettlementService: the insured-place half of a settlement, node to node.

Every method runs only at the node hosting the insured region (FenceSettlement and GetBill
at the treatment node they name); the nodes on the way forward it
(:mod:`~yidi_services.settlement.insured.forwarding`). There, persons and policies come from this
node's filing and policy services (:mod:`~yidi_services.settlement.insured.lookups`), the settlement is applied as
a hold (:mod:`~yidi_services.settlement.insured.apply`, :mod:`~yidi_services.settlement.insured.holds`) and voided when its hold expires
unconfirmed (:mod:`~yidi_services.settlement.insured.expiry`). Every mutating method is idempotent on its
``request_id`` through the settlement service's request log. An ApplySettlement is applied
only if the treatment node's seal holds (:mod:`yidi_runtime.integrity`), checked first. A
self-pay bill is reimbursed online here with this node's policy
(:mod:`~yidi_services.settlement.insured.reimbursement`), fetched from its treatment node.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import grpc
from google.protobuf.message import Message
from sqlalchemy.orm import Session

from yidi.filing.v1 import filing_service_pb2, insured_person_pb2
from yidi.settlement.v1 import insured_settlement_service_pb2 as api
from yidi.settlement.v1 import insured_settlement_service_pb2_grpc as api_grpc
from yidi.settlement.v1 import settlement_pb2
from yidi_codec.fields import Violations
from yidi_codec.results import accumulator_kind_to_proto
from yidi_core.codes import check_region
from yidi_core.errors import DomainError, invalid
from yidi_runtime import identity
from yidi_runtime.idempotency import Once, RequestLog, Response, fingerprint
from yidi_runtime.identity import CallerRole, Principal, Via
from yidi_runtime.integrity import NodeIntegrity, Origin
from yidi_runtime.logs import get_logger
from yidi_runtime.relay import Region, Relay, Vouching
from yidi_runtime.routing import Router
from yidi_runtime.service import BackgroundWorker, ServiceContext
from yidi_runtime.settlement_keys import origin_id
from yidi_runtime.wire import Clock, as_utc
from yidi_services.settlement.insured import apply, holds, ledger, reimbursement
from yidi_services.settlement.insured.convert import change_message, required
from yidi_services.settlement.insured.expiry import HoldExpiry, HoldMetrics
from yidi_services.settlement.insured.forwarding import ROUTED, routed
from yidi_services.settlement.insured.holds import check_application_id
from yidi_services.settlement.insured.lookups import InsuredPlace
from yidi_services.settlement.insured.models import AccountRow, ApplicationState
from yidi_services.settlement.models import RequestRecord
from yidi_services.settlement.records_listing import RecordsListing
from yidi_services.settlement.treatment import fences
from yidi_services.settlement.treatment.outcomes import retried
from yidi_services.settlement.treatment.peers import TreatmentPeers
from yidi_services.settlement.treatment.whole_bills import WholeBills, bill_key


def _content(request: Message) -> Message:
    """The request without its route and seal: a repeat is the same request whichever path it
    travelled, and ECDSA seals a retry's identical content with another signature."""
    content = type(request)()
    content.CopyFrom(request)
    content.ClearField("route")
    if "payload_signature" in content.DESCRIPTOR.fields_by_name:
        content.ClearField("payload_signature")
    return content


def _required_fields(request: Message, *fields: str) -> None:
    problems = Violations()
    for field in fields:
        problems.check(lambda f=field: required(getattr(request, f), f))
    problems.raise_any()


_HOLD_STATES = {
    ApplicationState.HELD: api.HOLD_STATE_HELD,
    ApplicationState.CONFIRMED: api.HOLD_STATE_CONFIRMED,
}
"""Application states as the wire names them; every other state is voided."""

MAX_CONFIRMATIONS = 500
"""Confirmations one ConfirmSettlements call may carry."""
_CONFIRMATIONS_PER_TRANSACTION = 50
"""A batch commits in transactions of this many confirmations: one commit for many, while
the write lock is never held long enough to stall the applications waiting behind it."""


def _check_batch(request: api.ConfirmSettlementsRequest) -> None:
    """A batch names itself, holds 1 to MAX_CONFIRMATIONS confirmations, all for its own destination."""
    problems = Violations()
    problems.check(lambda: required(request.request_id, "request_id"))
    count = len(request.confirmations)
    if not 1 <= count <= MAX_CONFIRMATIONS:
        problems.add(
            invalid(
                "INVALID_ARGUMENT", "confirmations", f"1 to {MAX_CONFIRMATIONS} confirmations, not {count}"
            )
        )
    destination = request.route.destination_admdvs
    for index, confirmation in enumerate(request.confirmations[:MAX_CONFIRMATIONS]):
        own = confirmation.route.destination_admdvs
        if own and own != destination:
            problems.add(
                invalid(
                    "INVALID_ARGUMENT",
                    f"confirmations[{index}].route.destination_admdvs",
                    f"{own} is not the batch's destination {destination}",
                )
            )
    problems.raise_any()


class InsuredSettlementServicer(api_grpc.InsuredSettlementServiceServicer):
    """Resolves persons and applies classified bills under the insured policy."""

    def __init__(self, context: ServiceContext, router: Router, clock: Clock) -> None:
        self._database = context.database
        self._clock = clock
        self._hold = timedelta(seconds=context.settings.settlement_hold_timeout_s)
        self._requests = RequestLog(RequestRecord)
        self._place = InsuredPlace(router)
        self._metrics = HoldMetrics(context.metrics_registry)
        self._integrity = NodeIntegrity(context.settings, context.metrics_registry)
        self._expiry = HoldExpiry(
            context.database,
            router,
            self._integrity,
            clock,
            context.settings.settlement_hold_timeout_s,
            self._metrics,
        )
        self._log = get_logger(service="settlement", node=context.settings.label)
        self._region = context.settings.region
        self.relay = Relay(router, api_grpc.InsuredSettlementServiceStub)
        self._as_node = Relay(router, api_grpc.InsuredSettlementServiceStub, vouching=Vouching.NODE)
        self._records = RecordsListing(context.database, context.settings)
        self._bills = WholeBills(context.database, TreatmentPeers(router))

    def workers(self) -> list[BackgroundWorker]:
        """Background work the node runs for this half (voiding expired holds)."""
        return [self._expiry]

    def _once(
        self,
        request_id: str,
        method: str,
        request: Message,
        response_type: type[Response],
        effect: Callable[[Session], Response],
    ) -> Response:
        return self._requests.run_once(
            self._database, request_id, method, [_content(request)], response_type, effect
        )

    def _answered(
        self, session: Session, request_id: str, method: str, request: Message, response_type: type[Response]
    ) -> Response | None:
        """The stored answer to a repeat (DUPLICATE_REQUEST for other content), None for a new request."""
        digest = fingerprint([_content(request)])
        return self._requests.replay(session, request_id, method, digest, response_type)

    def _origin(self, method: str, request: Message) -> str:
        """The node that sealed a request naming an application: its seal's signer, which must be the
        route's origin (on an insecure node, which checks no seal, the route's origin)."""
        origin = request.route.origin_admdvs  # type: ignore[attr-defined]
        signer = self._integrity.verify(method, request, Origin(node={"route.origin_admdvs": origin}), ROUTED)
        return signer or origin

    def _receipted(self, answer: Response, request: Message) -> Response:
        """``answer`` with this node's receipt for the sealed ``request`` (stored with it in the request log)."""
        self._integrity.receipt(answer, request.payload_signature)  # type: ignore[attr-defined]
        return answer

    @routed
    def ResolvePerson(
        self, request: api.ResolvePersonRequest, context: grpc.ServicerContext
    ) -> api.ResolvePersonResponse:
        if request.psn_no:
            person = self._place.identify(
                request.credential, request.route.destination_admdvs, request.psn_no
            )
            return api.ResolvePersonResponse(person=person)
        snapshot, _ = self._place.direct_person(
            filing_service_pb2.CheckEligibilityRequest(
                person=insured_person_pb2.PersonLookup(credential=request.credential),
                insuplc_admdvs=request.route.destination_admdvs,
                treatment_admdvs=request.treatment_admdvs,
                service_date=request.service_date,
                med_type=request.med_type,
                emergency=request.emergency,
                chronic_disease=request.chronic_disease,
                fixmedins_code=request.fixmedins_code,
            )
        )
        with self._database.unit_of_work() as uow:
            if snapshot.has_personal_account:
                snapshot.account_balance_fen = ledger.balance_fen(uow.session, snapshot.psn_no)
            snapshot.family_account_balance_fen = ledger.family_balance_fen(
                uow.session, snapshot.psn_no, snapshot.family_account_balance_fen
            )
        return api.ResolvePersonResponse(person=snapshot)

    @routed
    def ApplySettlement(
        self, request: api.ApplySettlementRequest, context: grpc.ServicerContext
    ) -> api.ApplySettlementResponse:
        method, response_type = "ApplySettlement", api.ApplySettlementResponse
        self._integrity.verify(method, request, apply.origin(request), ROUTED)
        command = apply.command_of(request)
        if not command.dry_run:
            check_application_id(command.request_id, "request_id", within=command.fixmedins_code)
            with self._database.unit_of_work() as uow:
                holds.ensure_not_corrected(uow.session, command.request_id)
                answered = self._answered(uow.session, command.request_id, method, request, response_type)
            if answered is not None:
                return answered
        # The policy is asked after eligibility, of the place filing says the person is insured in
        # (a county below this node, say): both are this node's own services, called in process,
        # so asking them side by side would overlap no waiting, only add a thread.
        snapshot, version, policy = self._place.direct_terms(
            apply.eligibility_question(command, request.route.destination_admdvs),
            lambda person: apply.check_insutype(command, person),
        )
        terms = apply.Terms(snapshot, version, policy)
        if command.dry_run:
            with self._database.unit_of_work() as uow:
                return apply.dry_run(uow.session, command, terms)
        now = as_utc(self._clock())
        try:
            return self._once(
                command.request_id,
                method,
                request,
                response_type,
                lambda session: self._receipted(
                    apply.apply(session, command, terms, now, now + self._hold), request
                ),
            )
        except holds.AlreadyApplied:
            with self._database.unit_of_work() as uow:
                answered = self._answered(uow.session, command.request_id, method, request, response_type)
            if answered is None:
                raise RuntimeError(f"application {command.request_id} exists without its answer") from None
            return answered

    @routed
    def ConfirmSettlement(
        self, request: api.ConfirmSettlementRequest, context: grpc.ServicerContext
    ) -> api.ConfirmSettlementResponse:
        return self._confirm(request)

    @routed
    def ConfirmSettlements(
        self, request: api.ConfirmSettlementsRequest, context: grpc.ServicerContext
    ) -> api.ConfirmSettlementsResponse:
        _check_batch(request)
        confirmations: list[Once[api.ConfirmSettlementResponse] | DomainError] = []
        for confirmation in request.confirmations:
            try:
                confirmations.append(self._confirmation(confirmation))
            except DomainError as refusal:
                confirmations.append(refusal)
        runnable = [item for item in confirmations if isinstance(item, Once)]
        answers = iter(
            answer
            for start in range(0, len(runnable), _CONFIRMATIONS_PER_TRANSACTION)
            for answer in self._requests.run_each(
                self._database, runnable[start : start + _CONFIRMATIONS_PER_TRANSACTION]
            )
        )
        outcomes = []
        for confirmation, item in zip(request.confirmations, confirmations, strict=True):
            outcome = api.ConfirmOutcome(request_id=confirmation.request_id)
            answer = next(answers) if isinstance(item, Once) else item
            if isinstance(answer, DomainError):
                outcome.refusal.CopyFrom(
                    api.ConfirmRefusal(reason=answer.reason_code, message=answer.message)
                )
            else:
                outcome.answer.CopyFrom(answer)
            outcomes.append(outcome)
        return api.ConfirmSettlementsResponse(outcomes=outcomes)

    def _confirm(self, request: api.ConfirmSettlementRequest) -> api.ConfirmSettlementResponse:
        """Make one applied settlement final, once per confirmation request id."""
        return self._requests.run(self._database, self._confirmation(request))

    def _confirmation(self, request: api.ConfirmSettlementRequest) -> Once[api.ConfirmSettlementResponse]:
        """A confirmation checked (its seal, its origin's right to the application) and ready to run once
        (alone, or in a batch's transaction)."""
        _required_fields(request, "request_id", "original_request_id", "setl_id")
        origin = self._origin("ConfirmSettlement", request)
        check_application_id(request.original_request_id, "original_request_id", origin=origin)

        def effect(session: Session) -> api.ConfirmSettlementResponse:
            done = holds.confirm(
                session, request.original_request_id, request.setl_id, as_utc(self._clock()), origin
            )
            if done.state == ApplicationState.EXPIRED:
                self._log.error(
                    "confirmation of a voided hold: not applied again (the treatment node had fenced it)",
                    request_id=request.original_request_id,
                    setl_id=request.setl_id,
                )
            answer = api.ConfirmSettlementResponse(
                state=api.HOLD_STATE_CONFIRMED
                if done.state == ApplicationState.CONFIRMED
                else api.HOLD_STATE_VOIDED
            )
            return self._receipted(answer, request)

        return Once(
            request.request_id,
            "ConfirmSettlement",
            [_content(request)],
            api.ConfirmSettlementResponse,
            effect,
        )

    @routed
    def RevertSettlement(
        self, request: api.RevertSettlementRequest, context: grpc.ServicerContext
    ) -> api.RevertSettlementResponse:
        _required_fields(request, "request_id", "original_request_id")
        for field, limit in (("original_request_id", 64), ("psn_no", 30)):  # the tombstone's columns
            if len(getattr(request, field).strip()) > limit:
                raise invalid("INVALID_ARGUMENT", field, f"must be at most {limit} characters")
        origin = self._origin("RevertSettlement", request)
        check_application_id(request.original_request_id, "original_request_id", origin=origin)
        restored: list[bool] = []

        def effect(session: Session) -> api.RevertSettlementResponse:
            done = holds.revert(
                session, request.original_request_id, request.psn_no.strip(), as_utc(self._clock()), origin
            )
            restored.append(bool(done.movements))
            answer = api.RevertSettlementResponse(
                reverted=done.state == ApplicationState.REVERTED,
                accumulator_changes=[change_message(movement, done.year) for movement in done.movements],
            )
            return self._receipted(answer, request)

        answer = self._once(
            request.request_id, "RevertSettlement", request, api.RevertSettlementResponse, effect
        )
        if any(restored):
            self._metrics.voided.labels("reverted").inc()
        return answer

    @routed
    def CreditAccount(
        self, request: api.CreditAccountRequest, context: grpc.ServicerContext
    ) -> api.CreditAccountResponse:
        _required_fields(request, "request_id", "psn_no")
        region = check_region(request.insuplc_admdvs, "insuplc_admdvs")
        with self._database.unit_of_work() as uow:
            answered = self._answered(
                uow.session, request.request_id, "CreditAccount", request, api.CreditAccountResponse
            )
        if answered is not None:
            return answered
        self._place.ensure_person(request.psn_no.strip(), region)

        return self._once(
            request.request_id,
            "CreditAccount",
            request,
            api.CreditAccountResponse,
            lambda session: api.CreditAccountResponse(
                balance_fen=ledger.credit(session, request.psn_no.strip(), request.amount_fen)
            ),
        )

    @routed
    def ListSettlementRecords(
        self, request: api.ListSettlementRecordsRequest, context: grpc.ServicerContext
    ) -> api.ListSettlementRecordsResponse:
        return self._records.answer(request)

    @routed
    def FenceSettlement(
        self, request: api.FenceSettlementRequest, context: grpc.ServicerContext
    ) -> api.FenceSettlementResponse:
        """At the treatment node: what became of the settlement whose hold timed out (:mod:`~yidi_services.settlement.treatment.fences`)."""
        _required_fields(request, "request_id", "application_request_id")
        fenced_by = self._origin("FenceSettlement", request)
        check_application_id(request.application_request_id, "application_request_id", origin=self._region)
        key = origin_id(request.application_request_id, "apply") or request.application_request_id

        def effect(session: Session) -> api.FenceSettlementResponse:
            answer = fences.fence(session, key, fenced_by, as_utc(self._clock()))
            return self._receipted(answer, request)

        return retried(
            lambda: self._once(
                request.request_id, "FenceSettlement", request, api.FenceSettlementResponse, effect
            )
        )

    @routed
    def ResolveHold(
        self, request: api.ResolveHoldRequest, context: grpc.ServicerContext
    ) -> api.ResolveHoldResponse:
        """Resolve a hold now, as its timeout would (:meth:`~yidi_services.settlement.insured.expiry.HoldExpiry.resolve_now`)."""
        _required_fields(request, "request_id", "application_request_id")
        state = self._expiry.resolve_now(request.application_request_id.strip())
        return api.ResolveHoldResponse(state=_HOLD_STATES.get(state, api.HOLD_STATE_VOIDED))

    @routed
    def GetAccumulators(
        self, request: api.GetAccumulatorsRequest, context: grpc.ServicerContext
    ) -> api.GetAccumulatorsResponse:
        psn_no = required(request.psn_no, "psn_no")
        if not 1900 <= request.year <= 9999:
            raise invalid("INVALID_ARGUMENT", "year", f"must be a calendar year, got {request.year}")
        with self._database.unit_of_work() as uow:
            values = [
                api.AccumulatorValue(
                    kind=accumulator_kind_to_proto(row.kind), key=row.key, value_fen=row.value_fen
                )
                for row in ledger.accumulator_rows(uow.session, psn_no, request.year)
            ]
            account = uow.session.get(AccountRow, psn_no)
            balance = None if account is None else account.balance_fen
        if balance is None and not values:
            self._place.ensure_person(psn_no)
        return api.GetAccumulatorsResponse(accumulators=values, account_balance_fen=balance or 0)

    def _fetched(self, request: api.GetBillRequest, context: grpc.ServicerContext) -> api.Bill:
        """The bill, asked by this node on its own behalf of the treatment node its id names (or read here)."""
        field, value = bill_key(request)
        asked = api.GetBillRequest(route=settlement_pb2.Route(origin_admdvs=self._region))
        setattr(asked, field, value)
        toward = Region(value[:6], field)
        client = self._as_node.next_hop(toward)
        if client is None:
            return self._bills.read(asked, Principal(CallerRole.NODE, self._region, self._region, Via.LOCAL))
        answer: api.GetBillResponse = self._as_node.pass_on(client, "GetBill", asked, context, toward)
        return answer.bill

    def GetBill(self, request: api.GetBillRequest, context: grpc.ServicerContext) -> api.GetBillResponse:
        """Read here when the bill is this node's; relay a node's request on toward its treatment node;
        for anyone else who asks here, fetch it as this node (an operator's vouch would not pass the
        nodes outside their region) and keep the patient's credential to this node."""
        field, value = bill_key(request)
        principal = identity.acting()
        toward = Region(value[:6], field)
        client = self.relay.next_hop(toward)
        if client is None:
            return api.GetBillResponse(bill=self._bills.read(request, principal))
        if principal.role in (
            CallerRole.NODE,
            CallerRole.DEVELOPER,
        ):  # a node's request, or any on an insecure node
            answer: api.GetBillResponse = self.relay.pass_on(client, "GetBill", request, context, toward)
            return answer
        if principal.role is CallerRole.INSTITUTION:
            raise DomainError(
                "PERMISSION_DENIED_REGION",
                f"institution {principal.name} reads only the bills its own node {self._region} keeps",
                metadata={"caller": principal.subject, "node_region": self._region},
            )
        bill = self._fetched(request, context)
        bill.ClearField("person_credential")
        return api.GetBillResponse(bill=bill)

    @routed
    def ReimburseSelfPayBill(
        self, request: api.ReimburseSelfPayBillRequest, context: grpc.ServicerContext
    ) -> api.ReimburseSelfPayBillResponse:
        """Reimburse a self-pay bill online (:mod:`~yidi_services.settlement.insured.reimbursement`)."""
        method, response_type = "ReimburseSelfPayBill", api.ReimburseSelfPayBillResponse
        _required_fields(request, "request_id", "bill_id")
        region = check_region(request.insuplc_admdvs, "insuplc_admdvs")
        bill_id = request.bill_id.strip()
        with self._database.unit_of_work() as uow:
            answered = self._answered(uow.session, request.request_id, method, request, response_type)
            if answered is None:
                reimbursement.ensure_not_reimbursed(uow.session, bill_id)
        if answered is not None:
            return answered
        bill = reimbursement.bill_to_reimburse(
            self._fetched(api.GetBillRequest(bill_id=bill_id), context), region
        )
        snapshot = self._place.filing_status(reimbursement.eligibility_question(bill, region))
        version, policy = self._place.policy(
            snapshot.insuplc_admdvs, snapshot.insutype, bill.visit.service_date
        )
        terms = apply.Terms(snapshot, version, policy)
        now = as_utc(self._clock())
        return self._once(
            request.request_id,
            method,
            request,
            response_type,
            lambda session: reimbursement.reimburse(session, bill, terms, now, self._region),
        )
