"""`yidi demo`: a node on the embedded default, loaded with the sample data, answering real questions.

It starts a node in process (SQLite files in a temporary folder unless ``--data-dir`` is
given), imports the sample institutions, catalogues and policies through the generated
stubs exactly as an operator's tools do, then asks what a window clerk asks: may this
hospital settle this case, and what will the patient pay — printing the settlement core's
results and explanations, and one refusal with its stable reason.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.rpc import error_details_pb2
from google.type.date_pb2 import Date
from grpc_status import rpc_status
from rich.console import Console
from rich.table import Table

from yidi.catalogue.v1 import (
    catalogue_pb2,
    catalogue_service_pb2,
    catalogue_service_pb2_grpc,
    policy_service_pb2,
    policy_service_pb2_grpc,
)
from yidi.filing.v1 import filing_pb2, filing_service_pb2, filing_service_pb2_grpc, insured_person_pb2
from yidi.registry.v1 import institution_registry_service_pb2 as registry_api
from yidi.registry.v1 import institution_registry_service_pb2_grpc as registry_grpc
from yidi.type.v1 import fee_item_pb2, filing_category_pb2, visit_pb2
from yidi_cli.filing_client import read_persons, read_rules
from yidi_cli.node_client import message_id
from yidi_core.money import format_money, from_fen
from yidi_runtime.config import load_settings
from yidi_runtime.logs import configure_logging
from yidi_runtime.wire import china_day, date_message, wall_clock
from yidi_services.node import start_node

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
_NATIONAL = "000000"
_EFFECTIVE = Date(year=2022, month=1, day=1)
_POLICY_FORMATS = {
    ".json": policy_service_pb2.POLICY_FORMAT_JSON,
    ".toml": policy_service_pb2.POLICY_FORMAT_TOML,
}


@dataclass(frozen=True)
class Scenario:
    """One patient at one window: who they are, where they are treated, and the bill."""

    title: str
    insured_region: str
    insutype: str
    psn_type: str
    filing_category: int
    institution: str
    visit: visit_pb2.VisitFacts
    items: tuple[tuple[str, str, str], ...]  # code, quantity, unit price


SCENARIOS = (
    Scenario(
        "Langfang retiree buys diabetes drugs at a Beijing hospital (the national authority's worked example)",
        "131000",
        "310",
        "retired",
        filing_category_pb2.FILING_CATEGORY_RETIREE_RESETTLED,
        "H11010100001",
        visit_pb2.VisitFacts(
            med_type="14",
            service_date=Date(year=2022, month=7, day=1),
            institution_level="3",
            diagnoses=["E11.900"],
            chronic_disease="M01600",
            fixmedins_code="H11010100001",
            mdtrtarea_admvs="110101",
        ),
        (("XA10BFA022A001010100001", "1", "32.52"), ("XA10BXR023A001010100002", "1", "31.77")),
    ),
    Scenario(
        "Qinghai resident, referred, discharged from a Jiaxing hospital after a coronary stent",
        "630000",
        "390",
        "resident",
        filing_category_pb2.FILING_CATEGORY_REFERRAL,
        "H33040200001",
        visit_pb2.VisitFacts(
            med_type="21",
            service_date=Date(year=2025, month=3, day=18),
            institution_level="3",
            diagnoses=["I21.000"],
            fixmedins_code="H33040200001",
            mdtrtarea_admvs="330402",
        ),
        (
            ("001102000010000", "10", "60.00"),
            ("003106050020000", "1", "28000.00"),
            ("C0203010340000000002", "1", "900.00"),
            ("XJ01DDT071B002010100003", "20", "15.00"),
            ("C0203010340000000001", "1", "1200.00"),
        ),
    ),
)


def _chunks(content: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(content), size):
        yield content[start : start + size]


def load_samples(channel: grpc.Channel) -> list[str]:
    """Import every sample file through the stubs; return one line per import."""
    done = []
    registry = registry_grpc.InstitutionRegistryServiceStub(channel)
    institutions = (DATA / "institutions.csv").read_bytes()
    header = registry_api.ImportInstitutionsHeader(request_id=message_id(_NATIONAL), admdvs=_NATIONAL)
    requests = [registry_api.ImportInstitutionsRequest(header=header)]
    requests += [registry_api.ImportInstitutionsRequest(csv_chunk=chunk) for chunk in _chunks(institutions)]
    imported = registry.ImportInstitutions(iter(requests), timeout=60)
    done.append(f"registry: {imported.row_count} institutions")

    filing = filing_service_pb2_grpc.FilingServiceStub(channel)
    persons = read_persons(DATA / "persons.csv")
    filing.ImportInsuredPersons(
        filing_service_pb2.ImportInsuredPersonsRequest(request_id=message_id(_NATIONAL), persons=persons),
        timeout=60,
    )
    done.append(f"filing: {len(persons)} insured persons")
    for rules in read_rules(DATA / "filing-rules.toml"):
        filing.SetFilingRules(
            filing_service_pb2.SetFilingRulesRequest(
                request_id=message_id(rules.insuplc_admdvs), rules=rules
            ),
            timeout=30,
        )
        done.append(f"filing rules of {rules.insuplc_admdvs}")

    catalogue = catalogue_service_pb2_grpc.CatalogueServiceStub(channel)
    for path in sorted((DATA / "catalogues").glob("*.csv")):
        region = path.name[:6]
        catalogue_header = catalogue_service_pb2.ImportCatalogueHeader(
            request_id=message_id(region),
            admdvs=region,
            layer=catalogue_pb2.CATALOGUE_LAYER_PROVINCIAL_OVERLAY,
            effective_date=_EFFECTIVE,
        )
        stream = [catalogue_service_pb2.ImportCatalogueRequest(header=catalogue_header)]
        stream += [
            catalogue_service_pb2.ImportCatalogueRequest(csv_chunk=c) for c in _chunks(path.read_bytes())
        ]
        version = catalogue.ImportCatalogue(iter(stream), timeout=60).version
        done.append(f"catalogue {version.version_id}: {version.item_count} items ({path.name})")

    policy = policy_service_pb2_grpc.PolicyServiceStub(channel)
    for path in sorted((DATA / "policies").iterdir()):
        region, insutype = path.name[:6], path.name[7:10]
        policy.ImportPolicy(
            policy_service_pb2.ImportPolicyRequest(
                request_id=message_id(region),
                insuplc_admdvs=region,
                insutype=insutype,
                effective_date=_EFFECTIVE,
                format=_POLICY_FORMATS[path.suffix],
                document=path.read_bytes(),
            ),
            timeout=30,
        )
        done.append(f"policy {region}/{insutype} ({path.name})")
    return done


def _estimate(channel: grpc.Channel, scenario: Scenario) -> policy_service_pb2.EstimateResponse:
    registry = registry_grpc.InstitutionRegistryServiceStub(channel)
    registry.CheckInstitution(
        registry_api.CheckInstitutionRequest(
            fixmedins_code=scenario.institution,
            med_type=scenario.visit.med_type,
            chronic_disease=scenario.visit.chronic_disease,
            service_date=scenario.visit.service_date,
            insuplc_admdvs=scenario.insured_region,
        ),
        timeout=10,
    )
    items = [
        fee_item_pb2.FeeItem(feedetl_sn=str(index), med_list_codg=code, cnt=qty, pric=price)
        for index, (code, qty, price) in enumerate(scenario.items, start=1)
    ]
    return policy_service_pb2_grpc.PolicyServiceStub(channel).Estimate(
        policy_service_pb2.EstimateRequest(
            insuplc_admdvs=scenario.insured_region,
            insutype=scenario.insutype,
            psn_type=scenario.psn_type,
            filing_category=scenario.filing_category,
            visit=scenario.visit,
            items=items,
        ),
        timeout=10,
    )


def _print_result(
    console: Console, scenario: Scenario, response: policy_service_pb2.EstimateResponse
) -> None:
    result = response.result
    amounts = result.amounts
    table = Table(title=scenario.title, show_header=False, title_justify="left")
    for label, fen in (
        ("bill (medfee_sumamt)", amounts.medfee_sumamt_fen),
        ("full self-pay (fulamt_ownpay_amt)", amounts.fulamt_ownpay_amt_fen),
        ("over price ceiling (overlmt_selfpay)", amounts.overlmt_selfpay_fen),
        ("first self-pay (preselfpay_amt)", amounts.preselfpay_amt_fen),
        ("deductible paid (act_pay_dedc)", amounts.act_pay_dedc_fen),
        ("fund pays (hifp_pay)", amounts.hifp_pay_fen),
        ("patient pays (psn_part_amt)", amounts.psn_part_amt_fen),
    ):
        table.add_row(label, format_money(from_fen(fen)))
    console.print(table)
    console.print(f"catalogue {result.catalogue_version}, policy {result.policy_version}")
    for line in result.explanation.lines:
        console.print(f"  {line}", markup=False)


def _print_refusal(console: Console, channel: grpc.Channel) -> None:
    """A case the hospital has not opened: refused with a stable reason, not a mystery."""
    request = registry_api.CheckInstitutionRequest(
        fixmedins_code="H11010500001",
        med_type="14",
        chronic_disease="M07800",
        service_date=Date(year=2022, month=7, day=1),
        insuplc_admdvs="131000",
    )
    try:
        registry_grpc.InstitutionRegistryServiceStub(channel).CheckInstitution(request, timeout=10)
    except grpc.RpcError as error:
        console.print(
            f"Dialysis (M07800) at H11010500001: refused with reason {_reason(error)}: {error.details()}",  # type: ignore[attr-defined]
            markup=False,
        )


def _reason(error: grpc.RpcError) -> str:
    """The stable reason of a refusal (``ErrorInfo.reason``)."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    info = error_details_pb2.ErrorInfo()
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
    return info.reason


def _print_filing_story(console: Console, channel: grpc.Channel) -> None:
    """先备案: a Shenzhen retiree not yet filed for Hebei, files in the national app, is approved at once."""
    filing = filing_service_pb2_grpc.FilingServiceStub(channel)
    person = insured_person_pb2.PersonLookup(certno="440300195603120118")
    check = filing_service_pb2.CheckEligibilityRequest(
        person=person,
        insuplc_admdvs="440300",
        treatment_admdvs="130100",
        service_date=date_message(china_day(wall_clock())),  # the service day is China's calendar day
        med_type="21",
    )
    console.print("Shenzhen retiree admitted in Shijiazhuang (Hebei), eligibility before filing:")
    try:
        filing.CheckEligibility(check, timeout=10)
    except grpc.RpcError as error:
        console.print(f"  refused with reason {_reason(error)}: {error.details()}", markup=False)  # type: ignore[attr-defined]
    created = filing.CreateFiling(
        filing_service_pb2.CreateFilingRequest(
            request_id=message_id("440300"),
            person=person,
            insuplc_admdvs="440300",
            treatment_admdvs="130000",
            category=filing_category_pb2.FILING_CATEGORY_RETIREE_RESETTLED,
            channel=filing_pb2.FILING_CHANNEL_NATIONAL_APP,
            materials=filing_pb2.FilingMaterials(personal_commitment=True),
        ),
        timeout=10,
    ).filing
    console.print(
        f"  filed in the national app: {created.filing_id}, {filing_pb2.FilingState.Name(created.state)}",
        markup=False,
    )
    snapshot = filing.CheckEligibility(check, timeout=10).person
    console.print(
        f"  eligible now: {snapshot.psn_name_masked} {snapshot.certno_masked}, insutype {snapshot.insutype}, "
        f"filing category {filing_category_pb2.FilingCategory.Name(snapshot.filing_category)}",
        markup=False,
    )


def run_demo(data_dir: Path | None) -> int:
    """Start the node, load the samples, print the answers, stop the node."""
    console = Console()
    configure_logging("warning", "console")
    with tempfile.TemporaryDirectory(prefix="yidi-demo-") as scratch:
        settings = load_settings(
            environ={},
            overrides={
                "role": "national",
                "region": _NATIONAL,
                "data_dir": data_dir or Path(scratch),
                "grpc_port": 0,
                "metrics_port": "off",
            },
        )
        node = start_node(settings)
        try:
            console.print(
                f"[bold]yidi node[/] national {_NATIONAL} on {node.address}, data in {settings.data_dir}"
            )
            with grpc.insecure_channel(node.address) as channel:
                for line in load_samples(channel):
                    console.print(f"  imported {line}", markup=False)
                for scenario in SCENARIOS:
                    console.print()
                    _print_result(console, scenario, _estimate(channel, scenario))
                console.print()
                _print_refusal(console, channel)
                console.print()
                _print_filing_story(console, channel)
        finally:
            node.stop(1)
    return 0
