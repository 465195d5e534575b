"""Builders for the insured-settlement tests: a settable clock, loaded nodes, classified bills.

Persons come from the sample data (examples/data/persons.csv) and policies are imported
through PolicyService.ImportPolicy, as an operator would; bills are built already
classified, as the treatment node sends them.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.type.date_pb2 import Date

from yidi.catalogue.v1 import policy_service_pb2, policy_service_pb2_grpc
from yidi.filing.v1 import filing_service_pb2, filing_service_pb2_grpc
from yidi.settlement.v1 import insured_settlement_service_pb2 as api
from yidi.settlement.v1 import insured_settlement_service_pb2_grpc as api_grpc
from yidi.settlement.v1 import settlement_pb2
from yidi.type.v1 import fee_item_pb2, person_pb2, settlement_result_pb2, visit_pb2
from yidi_cli.filing_client import read_persons
from yidi_runtime.server import Node, create_server
from yidi_services.node import GROUPS
from yidi_services.settlement.servicer import register as register_settlement
from yidi_testing import error_details, settings_for

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
QINGHAI = "630000"
RETIREE_CERTNO = "630000196004020194"  # 310, retired, has a personal account
EMPLOYEE_CERTNO = "63000019910710030X"  # 310, employed, has a personal account
SERVICE_DAY = Date(year=2026, month=3, day=18)
YEAR = 2026
LOCAL_TREATMENT = "630102"  # inside the insured region: a local patient, no filing needed
REMOTE_TREATMENT = "330402"  # Jiaxing: needs a filing, or emergency rescue

# Sample values for the tests: outpatient care pays 50% above an annual 100.00 deductible, at
# most 1000.00 a year; inpatient care 80% above a per-visit 500.00, capped at 150000.00.
TEST_POLICY = {
    "rules": [
        {
            "med_types": ["11"],
            "psn_types": ["*"],
            "institution_levels": ["*"],
            "deductible": "100.00",
            "deductible_scope": "annual",
            "deductible_key": "outpatient",
            "ratio": "0.50",
            "cap": "1000.00",
            "cap_key": "outpatient",
        },
        {
            "med_types": ["21", "22", "24"],
            "psn_types": ["*"],
            "institution_levels": ["*"],
            "deductible": "500.00",
            "deductible_scope": "per_visit",
            "segment_key": "inpatient",
            "ratio": "0.80",
            "cap": "150000.00",
            "cap_key": "pool",
        },
    ],
    "ratio_adjustments": {"emergency": "-0.10"},
}

_ids = itertools.count(1)


def message_id(prefix: str = "630000") -> str:
    """A fresh msgid (region padded to 12, a timestamp, a sequence)."""
    return f"{prefix:0<12}{datetime.now(UTC):%Y%m%d%H%M%S}{next(_ids):06d}"


@dataclass
class SettableClock:
    """The settlement service's clock in a test; holds expire when the test moves it."""

    now: datetime = field(default_factory=lambda: datetime(2026, 3, 18, 2, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def start_insured_node(
    folder: Path, database_url: str | None, clock: SettableClock, region: str = QINGHAI, **overrides: Any
) -> Node:
    """A province node running filing, catalogue and settlement, settlement on ``clock``."""
    settings = settings_for(
        folder, database_url, auto_migrate=True, role="province", region=region, **overrides
    )
    timed = dataclasses.replace(
        GROUPS["settlement"], register=functools.partial(register_settlement, clock=clock)
    )
    return create_server(settings, [GROUPS["filing"], GROUPS["catalogue"], timed])


@dataclass
class Insured:
    """A running insured node with the sample persons of Qinghai and the test policy loaded."""

    node: Node
    stub: api_grpc.InsuredSettlementServiceStub
    filing: filing_service_pb2_grpc.FilingServiceStub
    retiree: str
    employee: str
    clock: SettableClock


@contextmanager
def insured_node(folder: Path, database_url: str | None, **overrides: Any) -> Iterator[Insured]:
    """Start a Qinghai node on a settable clock, load it, and stop it afterwards."""
    clock = SettableClock()
    node = start_insured_node(folder, database_url, clock, **overrides)
    try:
        with grpc.insecure_channel(node.address) as channel:
            persons = load_region(channel, QINGHAI, {"310": sample_policy()})
            yield Insured(
                node,
                api_grpc.InsuredSettlementServiceStub(channel),
                filing_service_pb2_grpc.FilingServiceStub(channel),
                persons[RETIREE_CERTNO],
                persons[EMPLOYEE_CERTNO],
                clock,
            )
    finally:
        node.stop(0)


def load_region(channel: grpc.Channel, region: str, policies: dict[str, bytes]) -> dict[str, str]:
    """Enrol the sample persons of ``region`` and import ``policies`` (insutype → JSON or TOML).

    Returns each enrolled person's ``psn_no`` by ID number.
    """
    filing = filing_service_pb2_grpc.FilingServiceStub(channel)
    persons = [person for person in read_persons(DATA / "persons.csv") if person.insuplc_admdvs == region]
    enrolled = filing.ImportInsuredPersons(
        filing_service_pb2.ImportInsuredPersonsRequest(request_id=message_id(region), persons=persons),
        timeout=30,
    )
    stub = policy_service_pb2_grpc.PolicyServiceStub(channel)
    for insutype, document in policies.items():
        toml = document.lstrip().startswith(b"#") or b"[[rules]]" in document
        stub.ImportPolicy(
            policy_service_pb2.ImportPolicyRequest(
                request_id=message_id(region),
                insuplc_admdvs=region,
                insutype=insutype,
                effective_date=Date(year=2022, month=1, day=1),
                format=policy_service_pb2.POLICY_FORMAT_TOML
                if toml
                else policy_service_pb2.POLICY_FORMAT_JSON,
                document=document,
            ),
            timeout=30,
        )
    return {person.certno: psn_no for person, psn_no in zip(persons, enrolled.psn_nos, strict=True)}


def sample_policy() -> bytes:
    """:data:`TEST_POLICY` as an ImportPolicy document."""
    return json.dumps(TEST_POLICY).encode()


@dataclass(frozen=True)
class Line:
    """One classified line: class A in scope, or class C (full self-pay)."""

    sn: str
    fen: int
    in_scope: bool = True

    def message(self) -> fee_item_pb2.ItemResult:
        if self.in_scope:
            return fee_item_pb2.ItemResult(
                feedetl_sn=self.sn,
                med_list_codg="001102000010000",
                det_item_fee_sumamt_fen=self.fen,
                chrgitm_lv="01",
                inscp_scp_amt_fen=self.fen,
            )
        return fee_item_pb2.ItemResult(
            feedetl_sn=self.sn,
            med_list_codg="003106050020000",
            det_item_fee_sumamt_fen=self.fen,
            chrgitm_lv="03",
            fulamt_ownpay_amt_fen=self.fen,
            self_pay_reasons=[fee_item_pb2.SELF_PAY_REASON_CLASS_C],
        )


def route(
    destination: str = QINGHAI, hops: tuple[str, ...] = (), origin: str = LOCAL_TREATMENT
) -> settlement_pb2.Route:
    """A route from the treatment node ``origin`` (by default this insured node's own region, where the
    institution of :func:`facts` is)."""
    return settlement_pb2.Route(origin_admdvs=origin, destination_admdvs=destination, hops=hops)


def facts(
    med_type: str = "11", treatment: str = LOCAL_TREATMENT, emergency: bool = False, **fields: Any
) -> visit_pb2.VisitFacts:
    values: dict[str, Any] = {
        "service_date": SERVICE_DAY,
        "institution_level": "3",
        "fixmedins_code": "H63010200001",
        **fields,
    }
    return visit_pb2.VisitFacts(med_type=med_type, mdtrtarea_admvs=treatment, emergency=emergency, **values)


def apply_request(
    psn_no: str,
    lines: tuple[Line, ...] = (Line("1", 30000), Line("2", 5000, in_scope=False)),
    **fields: Any,
) -> api.ApplySettlementRequest:
    """An ApplySettlement of an outpatient bill (by default 300.00 in scope and 50.00 self-pay)."""
    items = [line.message() for line in lines]
    totals = api.ClassifiedTotals(
        medfee_sumamt_fen=sum(item.det_item_fee_sumamt_fen for item in items),
        fulamt_ownpay_amt_fen=sum(item.fulamt_ownpay_amt_fen for item in items),
        inscp_scp_amt_fen=sum(item.inscp_scp_amt_fen for item in items),
    )
    values: dict[str, Any] = {
        "route": route(),
        "psn_no": psn_no,
        "insutype": "310",
        "facts": facts(),
        "items": items,
        "totals": totals,
        "setl_id": f"{LOCAL_TREATMENT}{next(_ids):024d}",
        "catalogue_version": "330000@2022-01-01#1",
        **fields,
    }
    values.setdefault("request_id", application_id(values["facts"].fixmedins_code))
    return api.ApplySettlementRequest(**values)


def application_id(fixmedins_code: str = "H63010200001", msgid: str = "") -> str:
    """The id of an institution's ApplySettlement: ``<fixmedins_code>/<msgid>:apply``."""
    return f"{fixmedins_code}/{msgid or message_id()}:apply"


def credential(certno: str) -> person_pb2.Credential:
    return person_pb2.Credential(mdtrt_cert_type="02", mdtrt_cert_no=certno)


def accumulators(stub: api_grpc.InsuredSettlementServiceStub, psn_no: str) -> dict[str, int]:
    """The person's accumulators of the test year (``kind:key`` → fen) and ``account``."""
    answer = stub.GetAccumulators(api.GetAccumulatorsRequest(psn_no=psn_no, year=YEAR), timeout=10)
    values = {
        f"{settlement_result_pb2.AccumulatorKind.Name(value.kind).removeprefix('ACCUMULATOR_KIND_').lower()}:"
        f"{value.key}": value.value_fen
        for value in answer.accumulators
    }
    return {**values, "account": answer.account_balance_fen}


def credit(stub: api_grpc.InsuredSettlementServiceStub, psn_no: str, fen: int, **fields: Any) -> int:
    request = api.CreditAccountRequest(
        request_id=message_id(), insuplc_admdvs=QINGHAI, psn_no=psn_no, amount_fen=fen, **fields
    )
    return stub.CreditAccount(request, timeout=10).balance_fen


def refusal(call: Any) -> tuple[grpc.StatusCode, str, list[str]]:
    """Call and expect a refusal: its status code, reason and the fields it names."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    details = error_details(caught.value)
    bad = details.get("BadRequest")
    return (
        caught.value.code(),
        details["ErrorInfo"].reason,
        [violation.field for violation in bad.field_violations] if bad else [],
    )
