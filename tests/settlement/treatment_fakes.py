"""The treatment node's handlers on a fresh SQLite database, with fake peers in place of a federation.

A test drives :class:`~yidi_services.settlement.treatment.desk.Desk`,
:class:`~yidi_services.settlement.treatment.settle.Settlements` and
:class:`~yidi_services.settlement.treatment.corrections.Corrections` directly, assembled as
the servicer assembles them; the province (registry, catalogue) and the insured side answer
from what the test gives them and remember what they were asked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar, cast

from google.protobuf.message import Message
from sqlalchemy import select, update

from yidi.catalogue.v1 import catalogue_pb2
from yidi.catalogue.v1 import catalogue_service_pb2 as catalogue_api
from yidi.registry.v1 import institution_pb2
from yidi.registry.v1 import institution_registry_service_pb2 as registry_api
from yidi.settlement.v1 import insured_settlement_service_pb2 as insured_api
from yidi.settlement.v1 import settlement_pb2
from yidi.settlement.v1.insured_settlement_service_pb2_grpc import InsuredSettlementServiceStub
from yidi.type.v1 import person_pb2, settlement_result_pb2, visit_pb2
from yidi_core.errors import DomainError
from yidi_runtime.db import Database, service_url
from yidi_runtime.integrity import NodeIntegrity
from yidi_runtime.migrate import upgrade
from yidi_runtime.outbox import Outbox
from yidi_services.node import GROUPS
from yidi_services.settlement.models import OutboxMessage
from yidi_services.settlement.receipts import Receipts
from yidi_services.settlement.treatment import listing, visits
from yidi_services.settlement.treatment.checks import Caller
from yidi_services.settlement.treatment.corrections import Corrections
from yidi_services.settlement.treatment.desk import Desk
from yidi_services.settlement.treatment.outcomes import Requests
from yidi_services.settlement.treatment.peers import INSURED_UNREACHABLE, TreatmentPeers
from yidi_services.settlement.treatment.settle import Settlements
from yidi_testing import settings_for

Answer = TypeVar("Answer")
POLICY_VERSION = "policy-7"


class Clock:
    """A wall clock that moves only when the test moves it."""

    def __init__(self, now: datetime = datetime(2022, 7, 20, 2, 0, tzinfo=UTC)) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Province:
    """The treatment province's registry and catalogue: the entries in force and an optional refusal."""

    def __init__(
        self, entries: Iterable[catalogue_pb2.CatalogueItem], versions: tuple[str, str] = ("ov-1", "base-1")
    ) -> None:
        self.entries = {entry.code: entry for entry in entries}
        self.versions = versions
        self.institution_refusal: DomainError | None = None
        self.checked: list[str] = []
        self.looked_up: list[list[str]] = []

    def check_institution(
        self, facts: visit_pb2.VisitFacts, insuplc_admdvs: str, at: datetime
    ) -> registry_api.CheckInstitutionResponse:
        self.checked.append(facts.fixmedins_code)
        if self.institution_refusal is not None:
            raise self.institution_refusal
        return registry_api.CheckInstitutionResponse(
            institution=institution_pb2.Institution(fixmedins_code=facts.fixmedins_code, level="3")
        )

    def lookup_items(self, admdvs: str, codes: list[str], day: date) -> catalogue_api.LookupItemsResponse:
        self.looked_up.append(list(codes))
        return catalogue_api.LookupItemsResponse(
            items=[self.entries[code] for code in codes if code in self.entries],
            missing_codes=[code for code in codes if code not in self.entries],
            overlay_version_id=self.versions[0],
            base_version_id=self.versions[1],
        )


@dataclass
class InsuredSide:
    """The insured node's settlement half, faked: a deterministic split, holds kept by request id.

    The fund pays ``fund_share`` of the in-scope amount (rounded down to the fen), the personal
    account up to ``account_fen`` when asked, the person the rest in cash; the fund's payment
    counts against one cap accumulator. ``unreachable`` calls fail INSURED_REGION_UNREACHABLE
    before reaching it; ``lose_answers`` applications take effect and then fail the same way
    (the answer lost on the way back). ``asked`` holds every request that arrived, in order.
    """

    fund_share: Fraction = Fraction(7, 10)
    account_fen: int = 50_000
    unreachable: int = 0
    lose_answers: int = 0
    asked: list[Message] = field(default_factory=list)
    held: dict[str, insured_api.ApplySettlementResponse] = field(default_factory=dict)
    """Applications (not dry runs) by ApplySettlement request id."""
    reverted: dict[str, insured_api.RevertSettlementResponse] = field(default_factory=dict)
    """Reverts by RevertSettlement request id."""
    undone: set[str] = field(default_factory=set)
    """Applications a revert undid, by ApplySettlement request id."""
    cap_used_fen: int = 0

    def requests(self, kind: type[Answer]) -> list[Answer]:
        """The requests of one type that arrived, in order."""
        return [request for request in self.asked if isinstance(request, kind)]

    def _arrive(self, request: Message) -> None:
        if self.unreachable:
            self.unreachable -= 1
            raise DomainError(INSURED_UNREACHABLE, "the insured node does not answer (fake)")
        self.asked.append(request)

    def _split(self, request: insured_api.ApplySettlementRequest) -> insured_api.ApplySettlementResponse:
        totals = request.totals
        fund = totals.inscp_scp_amt_fen * self.fund_share.numerator // self.fund_share.denominator
        personal = totals.medfee_sumamt_fen - fund
        account = min(personal, self.account_fen) if request.use_account else 0
        amounts = settlement_result_pb2.SettlementAmounts(
            medfee_sumamt_fen=totals.medfee_sumamt_fen,
            fulamt_ownpay_amt_fen=totals.fulamt_ownpay_amt_fen,
            overlmt_selfpay_fen=totals.overlmt_selfpay_fen,
            preselfpay_amt_fen=totals.preselfpay_amt_fen,
            inscp_scp_amt_fen=totals.inscp_scp_amt_fen,
            hifp_pay_fen=fund,
            fund_pay_sumamt_fen=fund,
            psn_part_amt_fen=personal,
            acct_pay_fen=account,
            psn_cash_pay_fen=personal - account,
            balc_fen=self.account_fen - account,
        )
        result = settlement_result_pb2.SettlementResult(
            amounts=amounts,
            fund_lines=[
                settlement_result_pb2.FundPayLine(
                    fund_pay_type="310100",
                    inscp_scp_amt_fen=totals.inscp_scp_amt_fen,
                    crt_payb_lmt_amt_fen=10_000_000 - self.cap_used_fen,
                    fund_payamt_fen=fund,
                )
            ],
            items=request.items,
            accumulator_changes=[self._cap_change(fund)],
            explanation=settlement_result_pb2.Explanation(lines=[f"fake: fund {self.fund_share}"]),
            catalogue_version=request.catalogue_version,
            policy_version=POLICY_VERSION,
        )
        return insured_api.ApplySettlementResponse(
            result=result,
            person=person_pb2.PersonSnapshot(psn_no=request.psn_no),
            policy_version=POLICY_VERSION,
        )

    def _cap_change(self, delta_fen: int) -> settlement_result_pb2.AccumulatorChange:
        return settlement_result_pb2.AccumulatorChange(
            kind=settlement_result_pb2.ACCUMULATOR_KIND_CAP,
            key="cap:fake",
            year=2022,
            before_fen=self.cap_used_fen,
            delta_fen=delta_fen,
            after_fen=self.cap_used_fen + delta_fen,
        )

    def ApplySettlement(
        self, request: insured_api.ApplySettlementRequest
    ) -> insured_api.ApplySettlementResponse:
        self._arrive(request)
        if request.dry_run:
            return self._split(request)
        if request.request_id not in self.held:  # idempotent per request id, as the real one
            self.held[request.request_id] = self._split(request)
            self.cap_used_fen += self.held[request.request_id].result.amounts.fund_pay_sumamt_fen
        if self.lose_answers:
            self.lose_answers -= 1
            raise DomainError(INSURED_UNREACHABLE, "the answer was lost on the way back (fake)")
        return _copy(self.held[request.request_id])

    def ConfirmSettlement(
        self, request: insured_api.ConfirmSettlementRequest
    ) -> insured_api.ConfirmSettlementResponse:
        self._arrive(request)
        if request.original_request_id not in self.held:
            raise DomainError("NOT_FOUND", f"no hold {request.original_request_id} (fake)")
        return insured_api.ConfirmSettlementResponse()

    def RevertSettlement(
        self, request: insured_api.RevertSettlementRequest
    ) -> insured_api.RevertSettlementResponse:
        self._arrive(request)
        if request.request_id not in self.reverted:  # idempotent per request id
            original = request.original_request_id
            held = self.held.get(original)
            if held is None or original in self.undone:
                answer = insured_api.RevertSettlementResponse(reverted=False)
            else:
                fund = held.result.amounts.fund_pay_sumamt_fen
                answer = insured_api.RevertSettlementResponse(
                    reverted=True, accumulator_changes=[self._cap_change(-fund)]
                )
                self.cap_used_fen -= fund
                self.undone.add(original)
            self.reverted[request.request_id] = answer
        return _copy(self.reverted[request.request_id])

    def ResolvePerson(self, request: insured_api.ResolvePersonRequest) -> insured_api.ResolvePersonResponse:
        self._arrive(request)
        return insured_api.ResolvePersonResponse(person=person_pb2.PersonSnapshot(psn_no=request.psn_no))


M = TypeVar("M", bound=Message)


def _copy(message: M) -> M:
    """A copy, so a handler that fills in an answer never changes what the fake keeps."""
    copied = type(message)()
    copied.CopyFrom(message)
    return copied


class FakePeers(TreatmentPeers):
    """:class:`TreatmentPeers` without a router: the province and the insured side are the fakes given."""

    def __init__(self, region: str, province: Province, insured_side: InsuredSide) -> None:
        self.region = region
        self.province = province
        self.insured_side = insured_side
        self.insured_regions: list[str] = []

    def check_institution(
        self, facts: visit_pb2.VisitFacts, insuplc_admdvs: str, at: datetime
    ) -> registry_api.CheckInstitutionResponse:
        return self.province.check_institution(facts, insuplc_admdvs, at)

    def kept_institution_check(
        self, facts: visit_pb2.VisitFacts, insuplc_admdvs: str, at: datetime
    ) -> registry_api.CheckInstitutionResponse | None:
        return None  # the fake province keeps nothing: every check is asked

    def lookup_items(self, admdvs: str, codes: list[str], day: date) -> catalogue_api.LookupItemsResponse:
        return self.province.lookup_items(admdvs, codes, day)

    def insured(
        self,
        insuplc_admdvs: str,
        method: Callable[[InsuredSettlementServiceStub], Callable[..., Answer]],
        request: Message,
    ) -> Answer:
        self.insured_regions.append(insuplc_admdvs)
        return method(cast(InsuredSettlementServiceStub, self.insured_side))(request)


@dataclass(frozen=True)
class Queued:
    """A message the outbox holds: where it goes, which method, its id and request, whether delivered."""

    destination: str
    method: str
    message_id: str
    payload: bytes
    delivered: bool


@dataclass
class TreatmentHandlers:
    """The treatment node's handlers on one database, and the readers a test checks them through."""

    database: Database
    peers: FakePeers
    clock: Clock
    desk: Desk
    settlements: Settlements
    corrections: Corrections

    def settlement(self, *, setl_id: str = "", medins_setl_id: str = "") -> settlement_pb2.Settlement:
        """GetSettlement as an operator reads it."""
        with self.database.unit_of_work() as uow:
            return listing.get(uow.session, setl_id, medins_setl_id, None)

    def listed(self, *, include_reversals: bool = True, audit_flagged_only: bool = False) -> list[str]:
        """The setl_ids ListSettlements gives an operator, oldest first."""
        query = listing.SettlementQuery("", "", None, None, include_reversals, audit_flagged_only)
        with self.database.unit_of_work() as uow:
            page, _ = listing.list_settlements(uow.session, query, 100, "")
        return [found.setl_id for found in page]

    def visit(self, mdtrt_id: str, caller: Caller) -> settlement_pb2.Visit:
        """The visit as the desk answers it."""
        with self.database.unit_of_work() as uow:
            return visits.visit_message(uow.session, visits.load(uow.session, mdtrt_id, caller))

    def outbox(self) -> dict[str, Queued]:
        """The settlement outbox by message id, in the order queued."""
        with self.database.unit_of_work() as uow:
            rows = uow.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
            return {
                row.message_id: Queued(
                    row.destination, row.method, row.message_id, row.payload, row.delivered_at is not None
                )
                for row in rows
            }

    def delivered(self, message_id: str) -> None:
        """What the outbox's deliverer records once a message is answered."""
        with self.database.unit_of_work(write=True) as uow:
            uow.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.message_id == message_id)
                .values(delivered_at=self.clock())
            )
            uow.commit()

    def read(self, model: type[Any], key: Any) -> Any:
        """One row by primary key (for what no reader exposes, such as an audit case)."""
        with self.database.unit_of_work() as uow:
            return uow.session.get(model, key)


@contextmanager
def treatment_handlers(tmp_path: Path, peers: FakePeers, clock: Clock) -> Iterator[TreatmentHandlers]:
    """The handlers as :class:`~yidi_services.settlement.treatment.servicer.SettlementServicer` builds them,
    on a SQLite database the settlement service's migrations created; disposed afterwards."""
    settings = settings_for(tmp_path)
    group = GROUPS["settlement"]
    database = Database.open(group.name, service_url(settings, group.name))
    try:
        upgrade(database, group.versions, group.metadata)
        requests = Requests(database)
        integrity = NodeIntegrity(settings)
        settlements = Settlements(
            database,
            peers,
            Outbox(OutboxMessage, clock),
            clock,
            requests,
            integrity,
            Receipts(integrity, clock),
        )
        yield TreatmentHandlers(
            database,
            peers,
            clock,
            Desk(database, peers, requests, clock),
            settlements,
            Corrections(database, peers, clock, requests, settlements),
        )
    finally:
        database.dispose()
