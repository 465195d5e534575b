"""The seed stories of the domain brief, played through the HIS stubs against a running federation.

Each story is what a hospital's HIS does at its window — VerifyPerson, RegisterVisit,
UploadFeeItems, (DischargeVisit,) PreSettle, Settle on the SettlementService of its own
node, with the national envelope, presenting the institution's own certificate — plus what
the insured place's operators do around it (filing, review, as ``operator/<region>/ops`` of
the insured region's node). A story returns what happened as data (:class:`StoryResult`): the
settlement, the steps, the refusals seen on the way and whether each expectation held.
`yidi demo` prints it; the federation tests assert on it.

Dates: the national authority's worked example happens on 2022-07-01, when the sample
catalogues and policies (in force from 2022-01-01) already applied; the other stories
happen today, China's calendar day (a filing made now starts today), except the stay that
began before its retroactive filing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from yidi.clearing.v1 import clearing_service_pb2, clearing_service_pb2_grpc, journal_pb2
from yidi.collaboration.v1 import collaboration_service_pb2, collaboration_service_pb2_grpc, ticket_pb2
from yidi.filing.v1 import filing_pb2, filing_service_pb2, filing_service_pb2_grpc, insured_person_pb2
from yidi.registry.v1 import institution_pb2
from yidi.registry.v1 import institution_registry_service_pb2 as registry_api
from yidi.registry.v1 import institution_registry_service_pb2_grpc as registry_grpc
from yidi.settlement.v1 import (
    insured_settlement_service_pb2,
    insured_settlement_service_pb2_grpc,
    settlement_pb2,
    settlement_service_pb2,
    settlement_service_pb2_grpc,
)
from yidi.type.v1 import (
    fee_item_pb2,
    filing_category_pb2,
    person_pb2,
    settlement_result_pb2,
    visit_pb2,
)
from yidi_core.codes import NATIONAL_REGION, institution_region, province_of
from yidi_core.money import round_fen, to_fen
from yidi_harness.federation import (
    NATIONAL_APP,
    NATIONAL_MINI_PROGRAM,
    NATIONAL_OPERATOR,
    Federation,
    institution,
    region_operator,
)
from yidi_harness.polling import TimedOut, eventually
from yidi_runtime.identity import Principal
from yidi_runtime.peers import message_id
from yidi_runtime.wire import CHINA_STANDARD_TIME, china_day, date_message, timestamp_message

_CALL_DEADLINE_S = 20.0
_DELIVERY_WAIT_S = 30.0
"""How long a story waits for the outboxes to carry a notice down the tree (one round takes well under a second)."""
_ID_CARD = "02"
_REVIEWER = "demo-reviewer"
Category = filing_category_pb2.FilingCategory.ValueType
Channel = filing_pb2.FilingChannel.ValueType


# -- the people and the bills ------------------------------------------------------------------


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def resident_id(region: str, serial: int, born: int = 19500101) -> str:
    """A valid resident ID number (GB 11643 check digit) of someone born in ``region``; ``serial`` makes it unique."""
    body = f"{region}{born + (serial // 1000) * 10000}{serial % 1000:03d}"
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS, strict=True)) % 11]


@dataclass(frozen=True)
class Patient:
    """Who comes to the window: the ID card presented and the insured region the clerk enters."""

    certno: str
    insuplc_admdvs: str
    who: str

    @property
    def credential(self) -> person_pb2.Credential:
        """The resident ID card (mdtrt_cert_type 02), which does not tell the insured region."""
        return person_pb2.Credential(mdtrt_cert_type=_ID_CARD, mdtrt_cert_no=self.certno)


LANGFANG_RETIREE = Patient("131000195402270170", "131000", "Langfang (Hebei) retiree, employee insurance")
TAIYUAN_EMPLOYEE = Patient("140100195811040153", "140100", "Taiyuan (Shanxi) insured, employee insurance")
SHENZHEN_RETIREE = Patient("440300195603120118", "440300", "Shenzhen (Guangdong) retiree, employee insurance")
QINGHAI_RESIDENT = Patient("630102195803150239", "630000", "Qinghai resident, resident insurance")

LANGFANG_TRAVELLER = Patient(
    resident_id("131000", 31, 19520101),
    "131000",
    "Langfang (Hebei) retiree visiting Tianjin, employee insurance",
)

LANGFANG_TRAVELLER_ENROLMENT = insured_person_pb2.InsuredPerson(
    certno=LANGFANG_TRAVELLER.certno,
    psn_name="样例廊三",
    insuplc_admdvs="131000",
    insutype="310",
    psn_type="1201",
    credential_activated=True,
    has_personal_account=True,
)
"""The Tianjin story's patient, enrolled by the story itself: the sample retiree is resettled in
Beijing (story 1), and one person holds one filing at a time (FILING_CONFLICT otherwise)."""

QINGHAI_RESIDENT_ENROLMENT = insured_person_pb2.InsuredPerson(
    certno=QINGHAI_RESIDENT.certno,
    psn_name="样例青三",
    insuplc_admdvs="630000",
    insutype="390",
    psn_type="1501",
    credential_activated=True,
    has_personal_account=False,
)
"""The Qinghai story's patient, enrolled by the story itself (sample value, like persons.csv).

The sample Qinghai persons are employees (310) while the sample Qinghai policy is for
residents (390); the story's patient is a resident, as in the press report.
"""


@dataclass(frozen=True)
class BillLine:
    """One fee line as the HIS bills it: national code, its own item name, quantity, unit price in yuan."""

    code: str
    name: str
    quantity: str
    price: str

    @property
    def amount_fen(self) -> int:
        """Quantity times price, to the fen."""
        return to_fen(round_fen(Decimal(self.quantity) * Decimal(self.price)))


def bill_total_fen(bill: Sequence[BillLine]) -> int:
    """The HIS's own total (medfee_sumamt), which Settle must match."""
    return sum(line.amount_fen for line in bill)


# -- the hospital's HIS ------------------------------------------------------------------------


@dataclass(frozen=True)
class Encounter:
    """One encounter at the window as the HIS knows it: the patient, the care, the bill, the times."""

    patient: Patient
    fixmedins_code: str
    med_type: str
    service_date: date
    begin_time: datetime
    diagnoses: tuple[str, ...]
    bill: tuple[BillLine, ...]
    institution_level: str = "3"
    chronic_disease: str = ""
    end_time: datetime | None = None

    @property
    def inpatient(self) -> bool:
        """Inpatient care is discharged (2402) before it is settled."""
        return self.med_type.startswith("2")

    @property
    def facts(self) -> visit_pb2.VisitFacts:
        """The visit facts the HIS registers."""
        return visit_pb2.VisitFacts(
            med_type=self.med_type,
            service_date=date_message(self.service_date),
            institution_level=self.institution_level,
            diagnoses=list(self.diagnoses),
            chronic_disease=self.chronic_disease,
            fixmedins_code=self.fixmedins_code,
            mdtrtarea_admvs=institution_region(self.fixmedins_code),
        )


class Window:
    """A hospital's HIS calling SettlementService on its node, every call with the national envelope."""

    def __init__(self, channel: grpc.Channel, fixmedins_code: str) -> None:
        self.fixmedins_code = fixmedins_code
        self.stub = settlement_service_pb2_grpc.SettlementServiceStub(channel)

    def envelope(self, insuplc_admdvs: str = "") -> settlement_pb2.Envelope:
        """The 公共报文 facts: this institution, its region, the patient's insured region."""
        return settlement_pb2.Envelope(
            fixmedins_code=self.fixmedins_code,
            mdtrtarea_admvs=institution_region(self.fixmedins_code),
            insuplc_admdvs=insuplc_admdvs,
            opter_type="1",
            opter="window-01",
            inf_time=timestamp_message(datetime.now(UTC)),
        )

    def request_id(self) -> str:
        """A msgid: this institution's code, the time, a sequence."""
        return message_id(self.fixmedins_code)

    def verify(self, visit: Encounter) -> person_pb2.PersonSnapshot:
        """1101: the person's insurance and filing for this region, date and care."""
        return self.stub.VerifyPerson(
            settlement_service_pb2.VerifyPersonRequest(
                envelope=self.envelope(),
                credential=visit.patient.credential,
                insuplc_admdvs=visit.patient.insuplc_admdvs,
                service_date=date_message(visit.service_date),
                med_type=visit.med_type,
                chronic_disease=visit.chronic_disease,
            ),
            timeout=_CALL_DEADLINE_S,
        ).person

    def register(self, visit: Encounter, person: person_pb2.PersonSnapshot) -> settlement_pb2.Visit:
        """2201 / 2401: the visit, with its mdtrt_id."""
        kind = "ZY" if visit.inpatient else "MZ"
        return self.stub.RegisterVisit(
            settlement_service_pb2.RegisterVisitRequest(
                request_id=self.request_id(),
                envelope=self.envelope(person.insuplc_admdvs),
                psn_no=person.psn_no,
                insutype=person.insutype,
                credential=visit.patient.credential,
                facts=visit.facts,
                ipt_otp_no=f"{kind}{datetime.now(UTC):%Y%m%d%H%M%S%f}",
                dept_code="A03",
                dept_name="内科",
                begin_time=timestamp_message(visit.begin_time),
            ),
            timeout=_CALL_DEADLINE_S,
        ).visit

    @staticmethod
    def items(visit: Encounter) -> list[fee_item_pb2.FeeItem]:
        """The visit's bill as the HIS sends its lines."""
        return [
            fee_item_pb2.FeeItem(
                feedetl_sn=f"{index:04d}",
                med_list_codg=line.code,
                medins_list_codg=f"HIS-{line.code[:10]}",
                cnt=line.quantity,
                pric=line.price,
                det_item_fee_sumamt_fen=line.amount_fen,
                fee_ocur_time=timestamp_message(visit.begin_time),
            )
            for index, line in enumerate(visit.bill, start=1)
        ]

    def upload(
        self, visit: Encounter, registered: settlement_pb2.Visit
    ) -> settlement_service_pb2.UploadFeeItemsResponse:
        """2204 / 2301: every line, classified by the treatment place's catalogue."""
        return self.stub.UploadFeeItems(
            settlement_service_pb2.UploadFeeItemsRequest(
                request_id=self.request_id(),
                envelope=self.envelope(registered.insuplc_admdvs),
                mdtrt_id=registered.mdtrt_id,
                items=self.items(visit),
            ),
            timeout=_CALL_DEADLINE_S,
        )

    def upload_self_pay_bill(self, visit: Encounter, reason: str, invoice: str) -> settlement_pb2.SelfPayBill:
        """The whole bill of a visit that could not settle directly, for online manual reimbursement (手工报销)."""
        insured = visit.patient.insuplc_admdvs
        return self.stub.UploadSelfPayBill(
            settlement_service_pb2.UploadSelfPayBillRequest(
                request_id=self.request_id(),
                envelope=self.envelope(insured),
                bill=settlement_pb2.SelfPayBill(
                    credential=visit.patient.credential,
                    insuplc_admdvs=insured,
                    facts=visit.facts,
                    items=self.items(visit),
                    medfee_sumamt_fen=bill_total_fen(visit.bill),
                    invoice_numbers=[invoice],
                    direct_settlement_failure_reason=reason,
                    service_date=date_message(visit.service_date),
                ),
            ),
            timeout=_CALL_DEADLINE_S,
        ).bill

    def discharge(self, visit: Encounter, registered: settlement_pb2.Visit) -> settlement_pb2.Visit:
        """2402: discharge time and diagnoses."""
        return self.stub.DischargeVisit(
            settlement_service_pb2.DischargeVisitRequest(
                request_id=self.request_id(),
                envelope=self.envelope(registered.insuplc_admdvs),
                mdtrt_id=registered.mdtrt_id,
                end_time=timestamp_message(visit.end_time or datetime.now(UTC)),
                diagnoses=list(visit.diagnoses),
            ),
            timeout=_CALL_DEADLINE_S,
        ).visit

    def pre_settle(
        self, visit: Encounter, registered: settlement_pb2.Visit
    ) -> settlement_result_pb2.SettlementResult:
        """2206 / 2303: what the patient would pay, changing nothing."""
        return self.stub.PreSettle(
            settlement_service_pb2.PreSettleRequest(
                envelope=self.envelope(registered.insuplc_admdvs),
                mdtrt_id=registered.mdtrt_id,
                medfee_sumamt_fen=bill_total_fen(visit.bill),
            ),
            timeout=_CALL_DEADLINE_S,
        ).result

    def settle_request(
        self, visit: Encounter, registered: settlement_pb2.Visit, request_id: str
    ) -> settlement_service_pb2.SettleRequest:
        """2207 / 2304 as sent; the same request again is a retry of the same settlement."""
        return settlement_service_pb2.SettleRequest(
            request_id=request_id,
            envelope=self.envelope(registered.insuplc_admdvs),
            mdtrt_id=registered.mdtrt_id,
            medfee_sumamt_fen=bill_total_fen(visit.bill),
            invono=f"INV{request_id[-12:]}",
        )

    def settle(self, request: settlement_service_pb2.SettleRequest) -> settlement_pb2.Settlement:
        """Send a Settle request; the settlement it made (or made the first time)."""
        return self.stub.Settle(request, timeout=_CALL_DEADLINE_S).settlement


def refusal_reason(error: grpc.RpcError) -> str:
    """The stable reason of a refusal (ErrorInfo.reason), else the gRPC status name."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return error.code().name  # type: ignore[attr-defined, no-any-return]


# -- what a story returns ------------------------------------------------------------------------


@dataclass(kw_only=True)
class Checked:
    """The expectations checked along a play, and why it stopped when it did."""

    steps: list[str] = field(default_factory=list)
    expectations: list[tuple[str, bool]] = field(default_factory=list)
    failure: str = ""

    def expect(self, description: str, held: bool) -> bool:
        """Record whether an expectation held; whether it did."""
        self.expectations.append((description, held))
        return held

    @property
    def ok(self) -> bool:
        """The play ran to its end and every expectation held."""
        return not self.failure and all(held for _, held in self.expectations)


@dataclass
class StoryResult(Checked):
    """What happened in one story: steps, refusals seen, the settlement, and the expectations checked."""

    number: int
    title: str
    short: str
    patient: Patient
    fixmedins_code: str
    treatment_node: str = ""
    institution_name: str = ""
    bill: tuple[BillLine, ...] = ()
    refusals: list[str] = field(default_factory=list)
    filing: filing_pb2.Filing | None = None
    person: person_pb2.PersonSnapshot | None = None
    visit: settlement_pb2.Visit | None = None
    pre_settlement: settlement_result_pb2.SettlementResult | None = None
    settlement: settlement_pb2.Settlement | None = None
    journal_entries: list[journal_pb2.JournalEntry] = field(default_factory=list)
    reimbursement: insured_settlement_service_pb2.ReimburseSelfPayBillResponse | None = None
    """The insured place's online reimbursement of a bill that could not settle directly."""
    ending: str = ""
    """How a story that settles nothing ended, for the summary."""


_ENTRIES = {
    filing_pb2.FILING_CHANNEL_HOSPITAL: "at the hospital's own node",
    filing_pb2.FILING_CHANNEL_NATIONAL_APP: "at the national node",
    filing_pb2.FILING_CHANNEL_NATIONAL_MINI_PROGRAM: "at the national node",
}
"""Where each channel's application enters the tree (it is answered at the insured place)."""
_NATIONAL_CHANNELS = {
    filing_pb2.FILING_CHANNEL_NATIONAL_APP: NATIONAL_APP,
    filing_pb2.FILING_CHANNEL_NATIONAL_MINI_PROGRAM: NATIONAL_MINI_PROGRAM,
}


@dataclass(frozen=True)
class Stage:
    """Where the stories play: the federation and the moment they start."""

    federation: Federation
    now: datetime

    @property
    def today(self) -> date:
        """China's calendar day now."""
        return china_day(self.now)

    def earlier_today(self, hours: float) -> datetime:
        """``hours`` before now, but not before today's midnight in China."""
        midnight = datetime.combine(self.today, clock_time(0, 0), CHINA_STANDARD_TIME)
        return max(self.now - timedelta(hours=hours), midnight)

    def treatment_node(self, fixmedins_code: str) -> str:
        """The node an institution's HIS calls: the one hosting the institution's region."""
        return self.federation.host_of(institution_region(fixmedins_code), "settlement")

    def his_channel(self, fixmedins_code: str) -> grpc.Channel:
        """The channel an institution's HIS has to its node, as the institution itself."""
        return self.federation.channel(self.treatment_node(fixmedins_code), institution(fixmedins_code))

    def window(self, fixmedins_code: str) -> Window:
        """The HIS of an institution, connected to its node."""
        return Window(self.his_channel(fixmedins_code), fixmedins_code)

    def filing_stub(self, insured_region: str) -> filing_service_pb2_grpc.FilingServiceStub:
        """FilingService at the node hosting the insured region, called by that node's operator.

        Every filing goes to the insured place; its operators enter what arrives through the
        other channels too (a hospital may call only its own region's node).
        """
        node = self.federation.host_of(insured_region, "filing")
        return filing_service_pb2_grpc.FilingServiceStub(self.federation.channel(node, region_operator(node)))

    def channel_stub(
        self, channel: Channel, fixmedins_code: str, insured_region: str
    ) -> filing_service_pb2_grpc.FilingServiceStub:
        """FilingService where ``channel`` reaches it, which routes the application to the insured place.

        The national app and mini-program are the national node's (``operator/000000/app``);
        the hospital files at its own node as itself (补办: retroactively, during a stay); any
        other channel, and a national one in a tree cut without the national node, is the
        insured place's window, its node's operator.
        """
        if channel == filing_pb2.FILING_CHANNEL_HOSPITAL:
            return filing_service_pb2_grpc.FilingServiceStub(self.his_channel(fixmedins_code))
        national = _NATIONAL_CHANNELS.get(channel)
        if national is None or NATIONAL_REGION not in self.federation.nodes:
            return self.filing_stub(insured_region)
        return filing_service_pb2_grpc.FilingServiceStub(self.federation.channel(NATIONAL_REGION, national))

    def enrol(
        self, insured_region: str, *persons: insured_person_pb2.InsuredPerson
    ) -> filing_service_pb2_grpc.FilingServiceStub:
        """Import ``persons`` at the node hosting ``insured_region``, as its operator; that node's stub."""
        stub = self.filing_stub(insured_region)
        stub.ImportInsuredPersons(
            filing_service_pb2.ImportInsuredPersonsRequest(
                request_id=message_id(insured_region), persons=list(persons)
            ),
            timeout=_CALL_DEADLINE_S,
        )
        return stub

    def enrol_and_file(
        self, insured_region: str, treatment_region: str, count: int, first_serial: int, who: str
    ) -> list[Patient]:
        """``count`` employees of ``insured_region``, enrolled and filed for ``treatment_region``.

        The sample filing rules approve these (temporary, other reasons) applications at once;
        anything else is an error of the caller's setup.
        """
        patients = [
            Patient(resident_id(insured_region, first_serial + n), insured_region, f"{who} {n}")
            for n in range(count)
        ]
        stub = self.enrol(
            insured_region,
            *(
                insured_person_pb2.InsuredPerson(
                    certno=patient.certno,
                    psn_name="样例",
                    insuplc_admdvs=insured_region,
                    insutype="310",
                    psn_type="1101",
                    credential_activated=True,
                    has_personal_account=True,
                )
                for patient in patients
            ),
        )
        for patient in patients:
            filing = stub.CreateFiling(
                filing_service_pb2.CreateFilingRequest(
                    request_id=message_id(insured_region),
                    person=insured_person_pb2.PersonLookup(certno=patient.certno),
                    insuplc_admdvs=insured_region,
                    treatment_admdvs=treatment_region,
                    category=filing_category_pb2.FILING_CATEGORY_TEMPORARY_OTHER,
                    channel=filing_pb2.FILING_CHANNEL_NATIONAL_APP,
                    start_date=date_message(self.today),
                    materials=filing_pb2.FilingMaterials(personal_commitment=True),
                ),
                timeout=_CALL_DEADLINE_S,
            ).filing
            if filing.state != filing_pb2.FILING_STATE_APPROVED:
                raise RuntimeError(f"the filing of {patient.who} was not approved at once: {filing}")
        return patients

    def institution_name(self, fixmedins_code: str) -> str:
        """The institution's name, as the registry of its node knows it."""
        channel = self.his_channel(fixmedins_code)
        return (
            registry_grpc.InstitutionRegistryServiceStub(channel)
            .GetInstitution(
                registry_api.GetInstitutionRequest(fixmedins_code=fixmedins_code), timeout=_CALL_DEADLINE_S
            )
            .institution.fixmedins_name
        )


@dataclass(frozen=True)
class Story:
    """A seed story: who, where, and the steps that play it into a result (a settlement, unless ``settles`` is off)."""

    number: int
    title: str
    short: str
    patient: Patient
    fixmedins_code: str
    run: Callable[[Stage, StoryResult], None]
    settles: bool = True

    def play(self, stage: Stage) -> StoryResult:
        """Play the story; an unexpected refusal ends it as a failure carrying the stable reason."""
        result = StoryResult(self.number, self.title, self.short, self.patient, self.fixmedins_code)
        try:
            result.treatment_node = stage.treatment_node(self.fixmedins_code)
            result.institution_name = stage.institution_name(self.fixmedins_code)
            self.run(stage, result)
        except grpc.RpcError as error:
            result.failure = f"{refusal_reason(error)}: {error.details()}"  # type: ignore[attr-defined]
        return result


# -- shared steps ---------------------------------------------------------------------------------


def file_for(
    stage: Stage,
    result: StoryResult,
    *,
    treatment_admdvs: str,
    category: Category,
    channel: Channel,
    start_date: date | None = None,
    retroactive: bool = False,
    designated: Sequence[str] = (),
    materials: filing_pb2.FilingMaterials | None = None,
) -> filing_pb2.Filing:
    """Apply for a filing through ``channel`` (:meth:`Stage.channel_stub`); an operator of the insured
    place's node approves it if it waits for review."""
    patient = result.patient
    filing = (
        stage.channel_stub(channel, result.fixmedins_code, patient.insuplc_admdvs)
        .CreateFiling(
            filing_service_pb2.CreateFilingRequest(
                request_id=message_id(patient.insuplc_admdvs),
                person=insured_person_pb2.PersonLookup(certno=patient.certno),
                insuplc_admdvs=patient.insuplc_admdvs,
                treatment_admdvs=treatment_admdvs,
                category=category,
                channel=channel,
                start_date=date_message(start_date),
                materials=materials or filing_pb2.FilingMaterials(personal_commitment=True),
                designated_institutions=list(designated),
                retroactive=retroactive,
            ),
            timeout=_CALL_DEADLINE_S,
        )
        .filing
    )
    result.steps.append(
        f"CreateFiling for {treatment_admdvs} via {_enum(filing_pb2.FilingChannel, channel)} "
        f"{_ENTRIES.get(channel, 'at the insured place')}: "
        f"{filing.filing_id} {_enum(filing_pb2.FilingState, filing.state)}"
    )
    if filing.state == filing_pb2.FILING_STATE_PENDING_REVIEW:
        filing = (
            stage.filing_stub(patient.insuplc_admdvs)
            .ReviewFiling(
                filing_service_pb2.ReviewFilingRequest(
                    request_id=message_id(patient.insuplc_admdvs),
                    filing_id=filing.filing_id,
                    decision=filing_service_pb2.REVIEW_DECISION_APPROVE,
                    reviewer=_REVIEWER,
                ),
                timeout=_CALL_DEADLINE_S,
            )
            .filing
        )
        result.steps.append(
            f"ReviewFiling by the insured region's operator: {_enum(filing_pb2.FilingState, filing.state)}"
        )
    result.filing = filing
    return filing


def treat(stage: Stage, result: StoryResult, visit: Encounter, *, lose_first_answer: bool = False) -> None:
    """The window's whole flow, verify to settle; with ``lose_first_answer`` the first Settle answer is dropped."""
    window = stage.window(visit.fixmedins_code)
    result.bill = visit.bill
    person = result.person = window.verify(visit)
    result.steps.append(
        f"VerifyPerson: {person.psn_name_masked} {person.certno_masked}, insutype {person.insutype}, "
        f"{_enum(filing_category_pb2.FilingCategory, person.filing_category)}"
    )
    registered = window.register(visit, person)
    result.steps.append(f"RegisterVisit: mdtrt_id {registered.mdtrt_id}")
    uploaded = window.upload(visit, registered)
    result.steps.append(
        f"UploadFeeItems: {len(uploaded.results)} lines, catalogue {uploaded.catalogue_version}"
    )
    if visit.inpatient:
        registered = window.discharge(visit, registered)
        result.steps.append("DischargeVisit: discharged")
    result.visit = registered
    result.pre_settlement = window.pre_settle(visit, registered)
    result.steps.append(
        f"PreSettle: the patient would pay {_yuan(result.pre_settlement.amounts.psn_part_amt_fen)}"
    )
    request = window.settle_request(visit, registered, window.request_id())
    if lose_first_answer:
        window.settle(request)  # the answer is lost on the way back: the HIS never sees it
        result.steps.append(
            f"Settle {request.request_id}: the answer is lost, the HIS does not know the outcome"
        )
    settlement = result.settlement = window.settle(request)
    retry = " (retried with the same request_id)" if lose_first_answer else ""
    result.steps.append(f"Settle {request.request_id}{retry}: setl_id {settlement.setl_id}")
    result.expect(
        "the pre-settlement showed the amounts settled",
        result.pre_settlement.amounts == settlement.result.amounts,
    )


def verify_refusal(stage: Stage, result: StoryResult, visit: Encounter) -> str:
    """VerifyPerson when a refusal is expected: its reason ('' when it was accepted)."""
    try:
        stage.window(visit.fixmedins_code).verify(visit)
    except grpc.RpcError as error:
        reason = refusal_reason(error)
        result.refusals.append(reason)
        result.steps.append(f"VerifyPerson refused: {reason}: {error.details()}")  # type: ignore[attr-defined]
        return reason
    result.steps.append("VerifyPerson: accepted")
    return ""


def journal_entries(
    federation: Federation, msgid: str, province: str, timeout_s: float = 20.0
) -> list[journal_pb2.JournalEntry]:
    """The national journal's entries for one settlement msgid, once the outbox delivered (bounded wait)."""
    stub = clearing_service_pb2_grpc.ClearingServiceStub(
        federation.channel(NATIONAL_REGION, NATIONAL_OPERATOR)
    )

    def found() -> list[journal_pb2.JournalEntry]:
        entries: list[journal_pb2.JournalEntry] = []
        token = ""
        while True:
            page = stub.ListJournalEntries(
                clearing_service_pb2.ListJournalEntriesRequest(
                    admdvs=province, page_size=1000, page_token=token
                ),
                timeout=_CALL_DEADLINE_S,
            )
            entries += [entry for entry in page.entries if entry.msgid == msgid]
            token = page.next_page_token
            if not token:
                return entries

    try:
        return eventually(
            found, within_s=timeout_s, interval_s=0.2, what=f"the national journal holds {msgid}"
        )
    except TimedOut:
        return []


# -- the five stories ------------------------------------------------------------------------------

WORKED_EXAMPLE_DAY = date(2022, 7, 1)
LANGFANG_BEIJING_HOSPITAL = "H11010100001"


def _worked_example(stage: Stage, result: StoryResult) -> None:
    # Resettled in Beijing since 2022: the long-term filing is entered with its original start
    # and names the hospital as an outpatient designated institution (Langfang requires two at most).
    file_for(
        stage,
        result,
        treatment_admdvs="110000",
        category=filing_category_pb2.FILING_CATEGORY_RETIREE_RESETTLED,
        channel=filing_pb2.FILING_CHANNEL_NATIONAL_APP,
        start_date=date(2022, 1, 1),
        retroactive=True,
        designated=(LANGFANG_BEIJING_HOSPITAL,),
    )
    visit = Encounter(
        patient=LANGFANG_RETIREE,
        fixmedins_code=LANGFANG_BEIJING_HOSPITAL,
        med_type="14",
        service_date=WORKED_EXAMPLE_DAY,
        begin_time=datetime(2022, 7, 1, 9, 30, tzinfo=CHINA_STANDARD_TIME),
        diagnoses=("E11.900",),
        chronic_disease="M01600",
        bill=(
            BillLine("XA10BFA022A001010100001", "阿卡波糖片", "1", "32.52"),
            BillLine("XA10BXR023A001010100002", "瑞格列奈片", "1", "31.77"),
        ),
    )
    treat(stage, result, visit)
    amounts = result.settlement.result.amounts if result.settlement else None
    result.expect("fund pays 48.89", amounts is not None and amounts.fund_pay_sumamt_fen == 4889)
    result.expect("patient pays 15.40", amounts is not None and amounts.psn_part_amt_fen == 1540)


def _qinghai_in_jiaxing(stage: Stage, result: StoryResult) -> None:
    stage.enrol(QINGHAI_RESIDENT.insuplc_admdvs, QINGHAI_RESIDENT_ENROLMENT)
    result.steps.append("ImportInsuredPersons at the Qinghai node: the resident is enrolled (390)")
    file_for(
        stage,
        result,
        treatment_admdvs="330400",
        category=filing_category_pb2.FILING_CATEGORY_REFERRAL,
        channel=filing_pb2.FILING_CHANNEL_NATIONAL_APP,
        materials=filing_pb2.FilingMaterials(referral_proof_id="QH-ZZ-0001"),
    )
    visit = Encounter(
        patient=QINGHAI_RESIDENT,
        fixmedins_code="H33040200001",
        med_type="21",
        service_date=stage.today,
        begin_time=stage.earlier_today(6),
        end_time=stage.now,
        diagnoses=("I21.000",),
        bill=(
            BillLine("001102000010000", "床位费", "1", "60.00"),
            BillLine("003106050020000", "经皮冠状动脉支架置入术", "1", "28000.00"),
            BillLine("C0203010340000000002", "冠脉支架(集采型号)", "1", "900.00"),
            BillLine("XJ01DDT071B002010100003", "注射用头孢曲松钠", "4", "15.00"),
            BillLine("C0203010340000000001", "冠脉支架(自费型号)", "1", "1200.00"),
        ),
    )
    treat(stage, result, visit, lose_first_answer=True)
    settlement = result.settlement
    if settlement is None:
        return
    window = stage.window(visit.fixmedins_code)
    recorded = window.stub.GetSettlement(
        settlement_service_pb2.GetSettlementRequest(
            envelope=window.envelope(QINGHAI_RESIDENT.insuplc_admdvs),
            medins_setl_id=settlement.medins_setl_id,
        ),
        timeout=_CALL_DEADLINE_S,
    ).settlement
    result.expect(
        "the retry answers the settlement made the first time", recorded.setl_id == settlement.setl_id
    )
    entries = result.journal_entries = journal_entries(
        stage.federation, settlement.medins_setl_id, province_of(QINGHAI_RESIDENT.insuplc_admdvs)
    )
    result.steps.append(
        f"ListJournalEntries at the national node: {len(entries)} entry for {settlement.medins_setl_id}"
    )
    result.expect("the national journal holds exactly one entry", len(entries) == 1)
    result.expect(
        "the journal entry carries the fund payment",
        len(entries) == 1 and entries[0].fund_pay_sumamt_fen == settlement.result.amounts.fund_pay_sumamt_fen,
    )


def _unfiled_taiyuan(stage: Stage, result: StoryResult) -> None:
    admitted = datetime.combine(stage.today - timedelta(days=3), clock_time(10, 0), CHINA_STANDARD_TIME)
    visit = Encounter(
        patient=TAIYUAN_EMPLOYEE,
        fixmedins_code="H11010500001",
        med_type="21",
        service_date=admitted.date(),
        begin_time=admitted,
        end_time=stage.now,
        diagnoses=("E11.900",),
        bill=(
            BillLine("001102000010000", "床位费", "3", "60.00"),
            BillLine("XA10ABG047B002010100004", "胰岛素注射液", "24", "68.00"),
            BillLine("002502000010000", "血糖测定", "12", "8.00"),
            BillLine("XA10BFA022A001010100001", "阿卡波糖片", "6", "32.52"),
            BillLine("XJ01DDT071B002010100003", "注射用头孢曲松钠", "6", "15.00"),
            BillLine("XA10BHS051A001010100008", "西格列汀片(目录外)", "2", "88.00"),
        ),
    )
    result.expect("VerifyPerson refuses NOT_FILED", verify_refusal(stage, result, visit) == "NOT_FILED")
    # 出院结算前补办备案: the hospital files during the stay, from the admission day.
    file_for(
        stage,
        result,
        treatment_admdvs="110000",
        category=filing_category_pb2.FILING_CATEGORY_TEMPORARY_OTHER,
        channel=filing_pb2.FILING_CHANNEL_HOSPITAL,
        start_date=visit.service_date,
        retroactive=True,
    )
    treat(stage, result, visit)
    result.expect("settled after the retroactive filing", result.settlement is not None)


def _shenzhen_self_service(stage: Stage, result: StoryResult) -> None:
    filing = file_for(
        stage,
        result,
        treatment_admdvs="130000",
        category=filing_category_pb2.FILING_CATEGORY_RETIREE_RESETTLED,
        channel=filing_pb2.FILING_CHANNEL_NATIONAL_APP,
    )
    result.expect("approved at once (即办秒批)", filing.state == filing_pb2.FILING_STATE_APPROVED)
    visit = Encounter(
        patient=SHENZHEN_RETIREE,
        fixmedins_code="H13010500001",
        med_type="11",
        service_date=stage.today,
        begin_time=stage.earlier_today(1),
        diagnoses=("E11.900",),
        bill=(
            BillLine("002502000010000", "血糖测定", "1", "8.00"),
            BillLine("XA10BFA022A001010100001", "阿卡波糖片", "3", "32.52"),
            BillLine("ZA12BAS0001010100000006", "复方丹参滴丸", "2", "25.80"),
        ),
    )
    treat(stage, result, visit)
    result.expect("settled", result.settlement is not None)


def _langfang_in_tianjin(stage: Stage, result: StoryResult) -> None:
    stage.enrol(LANGFANG_TRAVELLER.insuplc_admdvs, LANGFANG_TRAVELLER_ENROLMENT)
    result.steps.append("ImportInsuredPersons at the Langfang node: the retiree is enrolled (310)")
    filing = file_for(
        stage,
        result,
        treatment_admdvs="120000",
        category=filing_category_pb2.FILING_CATEGORY_TEMPORARY_OTHER,
        channel=filing_pb2.FILING_CHANNEL_NATIONAL_MINI_PROGRAM,
    )
    named = ", ".join(filing.designated_institutions) or "none"
    result.steps.append(f"institutions named on the filing: {named}; inpatient care may use any in Tianjin")
    result.expect(
        "the hospital is not named on the filing", result.fixmedins_code not in filing.designated_institutions
    )
    visit = Encounter(
        patient=LANGFANG_TRAVELLER,
        fixmedins_code=result.fixmedins_code,
        med_type="21",
        service_date=stage.today,
        begin_time=stage.earlier_today(8),
        end_time=stage.now,
        diagnoses=("I25.103",),
        bill=(
            BillLine("001102000010000", "床位费", "1", "60.00"),
            BillLine("003106050020000", "经皮冠状动脉支架置入术", "1", "18000.00"),
            BillLine("C0203010340000000002", "冠脉支架(集采型号)", "1", "798.00"),
            BillLine("XJ01DDT071B002010100003", "注射用头孢曲松钠", "2", "11.50"),
        ),
    )
    treat(stage, result, visit)
    result.expect("settled", result.settlement is not None)


def _registry(stage: Stage, region: str) -> registry_grpc.InstitutionRegistryServiceStub:
    """The registry of ``region``'s node, as that node's operator (the national operator at 000000)."""
    operator = NATIONAL_OPERATOR if region == NATIONAL_REGION else region_operator(region)
    return registry_grpc.InstitutionRegistryServiceStub(stage.federation.channel(region, operator))


def _suspensions_at(stage: Stage, region: str, fixmedins_code: str) -> list[str]:
    """The ids of the notices ``region``'s node holds in force now for the institution."""
    listed = _registry(stage, region).ListSuspensions(
        registry_api.ListSuspensionsRequest(
            fixmedins_code=fixmedins_code, active_at=timestamp_message(datetime.now(UTC))
        ),
        timeout=_CALL_DEADLINE_S,
    )
    return [notice.suspension_id for notice in listed.suspensions]


def _attempt(stage: Stage, result: StoryResult, visit: Encounter) -> str:
    """The window's flow up to Settle; the stable reason of the first refusal ('' when it settled)."""
    try:
        treat(stage, result, visit)
    except grpc.RpcError as error:
        reason = refusal_reason(error)
        result.refusals.append(reason)
        result.steps.append(f"refused: {reason}: {error.details()}")  # type: ignore[attr-defined]
        return reason
    return ""


def _suspended_in_jiaxing(stage: Stage, result: StoryResult) -> None:
    # 停机公告: the national node announces a stop at a city hospital; the notice travels down the
    # tree through the registries' outboxes, and the city node refuses its settlements.
    code = result.fixmedins_code
    now = datetime.now(UTC)
    notice = (
        _registry(stage, NATIONAL_REGION)
        .PublishSuspension(
            registry_api.PublishSuspensionRequest(
                request_id=message_id(NATIONAL_REGION),
                suspension=institution_pb2.Suspension(
                    fixmedins_code=code,
                    start_time=timestamp_message(now - timedelta(minutes=1)),
                    end_time=timestamp_message(now + timedelta(hours=2)),
                    reason="系统升级停机（示例）: the hospital's HIS is being upgraded",
                    publisher="national operations",
                ),
            ),
            timeout=_CALL_DEADLINE_S,
        )
        .suspension
    )
    result.steps.append(f"PublishSuspension at the national node: {notice.suspension_id} for {code}")
    city = stage.treatment_node(code)
    eventually(
        lambda: notice.suspension_id in _suspensions_at(stage, city, code),
        within_s=_DELIVERY_WAIT_S,
        what=f"the notice at node {city}",
    )
    result.steps.append(f"the notice reached node {city} through the outboxes (national → province → city)")
    visit = Encounter(
        patient=QINGHAI_RESIDENT,
        fixmedins_code=code,
        med_type="11",
        service_date=stage.today,
        begin_time=stage.earlier_today(1),
        diagnoses=("I25.103",),
        bill=(BillLine("XJ01DDT071B002010100003", "注射用头孢曲松钠", "1", "15.00"),),
    )
    reason = _attempt(stage, result, visit)
    result.expect(
        "the hospital's settlement is refused INSTITUTION_SUSPENDED", reason == "INSTITUTION_SUSPENDED"
    )
    _registry(stage, NATIONAL_REGION).RevokeSuspension(
        registry_api.RevokeSuspensionRequest(
            request_id=message_id(NATIONAL_REGION), suspension_id=notice.suspension_id
        ),
        timeout=_CALL_DEADLINE_S,
    )
    eventually(
        lambda: notice.suspension_id not in _suspensions_at(stage, city, code),
        within_s=_DELIVERY_WAIT_S,
        what=f"the revocation at node {city}",
    )
    result.steps.append(f"RevokeSuspension at the national node: node {city} settles again")


def _tickets(
    stage: Stage, region: str, who: Principal
) -> collaboration_service_pb2_grpc.CollaborationServiceStub:
    return collaboration_service_pb2_grpc.CollaborationServiceStub(stage.federation.channel(region, who))


def _ticket_at(
    stage: Stage, region: str, who: Principal, ticket_id: str, state: ticket_pb2.TicketState.ValueType
) -> ticket_pb2.Ticket:
    """The ticket as ``region``'s node holds it, once it is in ``state`` there (the outboxes carry each turn)."""

    def arrived() -> ticket_pb2.Ticket | None:
        try:
            ticket = (
                _tickets(stage, region, who)
                .GetTicket(
                    collaboration_service_pb2.GetTicketRequest(ticket_id=ticket_id), timeout=_CALL_DEADLINE_S
                )
                .ticket
            )
        except grpc.RpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:  # type: ignore[attr-defined]
                return None
            raise
        return ticket if ticket.state == state else None

    return eventually(arrived, within_s=_DELIVERY_WAIT_S, what=f"ticket {ticket_id} at node {region}")


def _ticket_about_qinghai(stage: Stage, result: StoryResult) -> None:
    # 协同处理: the Jiaxing hospital asks the Qinghai centre about the stay it settled in story 2.
    code, insured = result.fixmedins_code, QINGHAI_RESIDENT.insuplc_admdvs
    window = stage.window(code)
    settled = window.stub.ListSettlements(
        settlement_service_pb2.ListSettlementsRequest(envelope=window.envelope(), insuplc_admdvs=insured),
        timeout=_CALL_DEADLINE_S,
    ).settlements
    if not result.expect("the hospital finds the Qinghai patient's settlement", bool(settled)):
        return
    hospital, city = institution(code), stage.treatment_node(code)
    centre = region_operator(stage.federation.host_of(insured, "collaboration"))
    opened = (
        _tickets(stage, city, hospital)
        .OpenTicket(
            collaboration_service_pb2.OpenTicketRequest(
                request_id=message_id(city),
                subject_kind=ticket_pb2.TICKET_SUBJECT_KIND_SETTLEMENT,
                subject_id=settled[0].setl_id,
                category=ticket_pb2.TICKET_CATEGORY_PATIENT_COMPLAINT,
                treatment_admdvs=institution_region(code),
                insured_admdvs=insured,
                fixmedins_code=code,
                text="患者对自费支架金额有疑问，请参保地核对政策。The patient asks why the stent was self-pay.",
            ),
            timeout=_CALL_DEADLINE_S,
        )
        .ticket
    )
    due = opened.due_date
    result.steps.append(
        f"OpenTicket at node {city} by the hospital: {opened.ticket_id} about settlement {opened.subject_id}, "
        f"answer due {due.year:04d}-{due.month:02d}-{due.day:02d} (working days)"
    )
    home = centre.region
    queue = (
        _tickets(stage, home, centre).ListTickets(
            collaboration_service_pb2.ListTicketsRequest(), timeout=_CALL_DEADLINE_S
        )
        if _ticket_at(stage, home, centre, opened.ticket_id, ticket_pb2.TICKET_STATE_OPEN)
        else None
    )
    result.expect(
        f"the ticket waits in node {home}'s queue",
        queue is not None and opened.ticket_id in [ticket.ticket_id for ticket in queue.tickets],
    )
    result.steps.append(f"ListTickets at node {home}: the ticket waits for the Qinghai centre")
    _tickets(stage, home, centre).AnswerTicket(
        collaboration_service_pb2.AnswerTicketRequest(
            request_id=message_id(home),
            ticket_id=opened.ticket_id,
            text="该型号支架不在青海目录内，按规定自费。The model is outside Qinghai's list: self-pay by policy.",
        ),
        timeout=_CALL_DEADLINE_S,
    )
    _ticket_at(stage, city, hospital, opened.ticket_id, ticket_pb2.TICKET_STATE_ANSWERED)
    result.steps.append(f"AnswerTicket at node {home}; the answer reached node {city}")
    _tickets(stage, city, hospital).CloseTicket(
        collaboration_service_pb2.CloseTicketRequest(
            request_id=message_id(city),
            ticket_id=opened.ticket_id,
            text="已向患者解释。Explained to the patient.",
        ),
        timeout=_CALL_DEADLINE_S,
    )
    closed = _ticket_at(stage, home, centre, opened.ticket_id, ticket_pb2.TICKET_STATE_CLOSED)
    result.steps.append(f"CloseTicket at node {city} by the hospital; node {home} holds it closed")
    result.expect("the ticket is closed at both places", closed.state == ticket_pb2.TICKET_STATE_CLOSED)
    result.ending = f"ticket opened, answered, closed ({len(closed.messages)} messages)"


def _reimbursed_online(stage: Stage, result: StoryResult) -> None:
    # 手工报销线上办理: care the filing does not cover cannot settle directly; the hospital uploads
    # the whole bill once, and the insured place reads it across the tree and reimburses it.
    visit = Encounter(
        patient=LANGFANG_RETIREE,
        fixmedins_code=result.fixmedins_code,
        med_type="21",
        service_date=stage.today,
        begin_time=stage.earlier_today(5),
        end_time=stage.now,
        diagnoses=("I21.000",),
        bill=(
            BillLine("001102000010000", "床位费", "1", "60.00"),
            BillLine("003106050020000", "经皮冠状动脉支架置入术", "1", "18000.00"),
            BillLine("C0203010340000000002", "冠脉支架(集采型号)", "1", "798.00"),
            BillLine("XJ01DDT071B002010100003", "注射用头孢曲松钠", "2", "15.00"),
        ),
    )
    reason = verify_refusal(stage, result, visit)
    if not result.expect(
        "VerifyPerson refuses NOT_FILED (filed for Beijing, treated in Jiaxing)", reason == "NOT_FILED"
    ):
        return
    uploaded = stage.window(visit.fixmedins_code).upload_self_pay_bill(visit, reason, "ZJ-FP-0008")
    result.steps.append(
        f"UploadSelfPayBill at node {stage.treatment_node(visit.fixmedins_code)}: {uploaded.bill_id}"
    )
    home = stage.federation.host_of(LANGFANG_RETIREE.insuplc_admdvs, "settlement")
    insured = insured_settlement_service_pb2_grpc.InsuredSettlementServiceStub(
        stage.federation.channel(home, region_operator(home))
    )
    read = insured.GetBill(
        insured_settlement_service_pb2.GetBillRequest(bill_id=uploaded.bill_id), timeout=_CALL_DEADLINE_S
    ).bill
    result.steps.append(
        f"GetBill at node {home} by Langfang's operator: {len(read.lines)} lines classified with "
        f"{read.catalogue_version}, fetched from node {stage.treatment_node(visit.fixmedins_code)}"
    )
    result.expect("the insured place reads every line of the bill", len(read.lines) == len(visit.bill))
    reimbursed = insured.ReimburseSelfPayBill(
        insured_settlement_service_pb2.ReimburseSelfPayBillRequest(
            request_id=message_id(home),
            insuplc_admdvs=LANGFANG_RETIREE.insuplc_admdvs,
            bill_id=uploaded.bill_id,
        ),
        timeout=_CALL_DEADLINE_S,
    )
    result.reimbursement = reimbursed
    amounts = reimbursed.result.amounts
    result.steps.append(
        f"ReimburseSelfPayBill at node {home} with policy {reimbursed.policy_version}: the fund pays "
        f"{_yuan(amounts.fund_pay_sumamt_fen)}, the patient {_yuan(amounts.psn_part_amt_fen)}, "
        "recorded with the accumulators like a direct settlement"
    )
    result.expect("the fund pays its share", amounts.fund_pay_sumamt_fen > 0)
    result.expect(
        "the reimbursement covers the whole bill",
        amounts.medfee_sumamt_fen == bill_total_fen(visit.bill)
        and amounts.fund_pay_sumamt_fen + amounts.psn_part_amt_fen == amounts.medfee_sumamt_fen,
    )


STORIES: tuple[Story, ...] = (
    Story(
        1,
        "The Langfang retiree's diabetes drugs at a Beijing hospital (the national authority's worked example)",
        "Langfang retiree, Beijing (worked example)",
        LANGFANG_RETIREE,
        LANGFANG_BEIJING_HOSPITAL,
        _worked_example,
    ),
    Story(
        2,
        "The Qinghai patient discharged from a Jiaxing hospital: the Settle answer is lost, the HIS retries",
        "Qinghai patient, Jiaxing, answer lost",
        QINGHAI_RESIDENT,
        "H33040200001",
        _qinghai_in_jiaxing,
    ),
    Story(
        3,
        "The unfiled Taiyuan patient admitted in Beijing: refused, filed retroactively by the hospital, settled",
        "Unfiled Taiyuan patient, Beijing",
        TAIYUAN_EMPLOYEE,
        "H11010500001",
        _unfiled_taiyuan,
    ),
    Story(
        4,
        "The Shenzhen retiree files in the national app, is approved at once, and settles in Shijiazhuang",
        "Shenzhen retiree, Shijiazhuang",
        SHENZHEN_RETIREE,
        "H13010500001",
        _shenzhen_self_service,
    ),
    Story(
        5,
        "The Langfang retiree in a Tianjin hospital not named on the filing form, settling anyway",
        "Langfang retiree, Tianjin, hospital not named",
        LANGFANG_TRAVELLER,
        "H12011200001",
        _langfang_in_tianjin,
    ),
    Story(
        6,
        "A suspension notice published at the national node stops a Jiaxing hospital's settlements",
        "Suspension at national, Jiaxing refuses",
        QINGHAI_RESIDENT,
        "H33040200001",
        _suspended_in_jiaxing,
        settles=False,
    ),
    Story(
        7,
        "The Jiaxing hospital and the Qinghai centre settle a patient's question in a collaboration ticket",
        "Ticket Jiaxing ↔ Qinghai, answered and closed",
        QINGHAI_RESIDENT,
        "H33040200001",
        _ticket_about_qinghai,
        settles=False,
    ),
    Story(
        8,
        "The Langfang retiree's unfiled visit in Jiaxing: the whole bill uploaded, read and reimbursed online by Langfang",
        "Langfang retiree, Jiaxing, reimbursed online",
        LANGFANG_RETIREE,
        "H33040200001",
        _reimbursed_online,
        settles=False,
    ),
)


def play_all(federation: Federation, now: datetime | None = None) -> list[StoryResult]:
    """Every seed story in order, each played even if an earlier one failed."""
    stage = Stage(federation, now or datetime.now(UTC))
    return [story.play(stage) for story in STORIES]


def _enum(enum: Any, number: int) -> str:
    return str(enum.Name(number))


def _yuan(fen: int) -> str:
    return f"{Decimal(fen) / 100:.2f}"
