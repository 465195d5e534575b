"""Catalogue and policy versions changing mid-year, settled across the tree through the HIS stubs.

From 2022-07-01 Beijing's catalogue raises repaglinide's first self-pay ratio (class B) from
10% to 30%, and Langfang's employee policy pays chronic-disease outpatient care of retirees
at 70% instead of 80%. The Langfang retiree resettled in Beijing (the worked example) is
treated on both sides of the change. Every expected amount is the settlement core's on the
same inputs (the calc case format: the version's catalogue rows and policy document, the
person, the accumulators before the visit, the bill), never a number typed in.
"""

from __future__ import annotations

import csv
import io
import tomllib
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from federation_support import (
    DatabaseFactory,
    accumulators,
    loaded_federation,
    record_for,
    stage_of,
)
from google.type.date_pb2 import Date

from yidi.catalogue.v1 import (
    catalogue_pb2,
    catalogue_service_pb2,
    catalogue_service_pb2_grpc,
    policy_service_pb2,
    policy_service_pb2_grpc,
)
from yidi.filing.v1 import filing_pb2
from yidi.settlement.v1 import settlement_pb2
from yidi.type.v1 import filing_category_pb2, person_pb2
from yidi_core.case_format import parse_case
from yidi_core.money import from_fen, to_fen
from yidi_harness.federation import SAMPLE_DATA, Federation
from yidi_harness.stories import LANGFANG_RETIREE, BillLine, Encounter, Window, file_for
from yidi_runtime.peers import message_id
from yidi_runtime.wire import CHINA_STANDARD_TIME

NATIONAL, BEIJING, HEBEI, LANGFANG = "000000", "110000", "130000", "131000"
HOSPITAL = "H11010100001"  # chronic outpatient M01600 from 2022-01-01, inpatient care
CHANGE_DAY = date(2022, 7, 1)
REPAGLINIDE = "XA10BXR023A001010100002"
CATALOGUE_V1 = (SAMPLE_DATA / "catalogues" / "110000-beijing.csv").read_text(encoding="utf-8")
CATALOGUE_V2 = CATALOGUE_V1.replace(
    f"{REPAGLINIDE},瑞格列奈片,drug,02,0.10,", f"{REPAGLINIDE},瑞格列奈片,drug,02,0.30,"
)
POLICY_V1 = (SAMPLE_DATA / "policies" / "131000-310-langfang.toml").read_text(encoding="utf-8")
POLICY_V2 = POLICY_V1.replace('ratio = "0.80"', 'ratio = "0.70"')
DIABETES_DRUGS = (
    BillLine("XA10BFA022A001010100001", "阿卡波糖片", "1", "32.52"),
    BillLine(REPAGLINIDE, "瑞格列奈片", "1", "31.77"),
)
STENT_STAY = (
    BillLine("001102000010000", "床位费", "4", "60.00"),
    BillLine("003106050020000", "经皮冠状动脉支架置入术", "1", "18000.00"),
    BillLine(REPAGLINIDE, "瑞格列奈片", "10", "31.77"),
)
_AMOUNTS = (
    "medfee_sumamt",
    "fulamt_ownpay_amt",
    "overlmt_selfpay",
    "preselfpay_amt",
    "inscp_scp_amt",
    "act_pay_dedc",
    "hifp_pay",
    "fund_pay_sumamt",
    "psn_part_amt",
)


@dataclass(frozen=True)
class Versions:
    """A catalogue version and a policy version: their ids and their contents."""

    catalogue_id: str
    policy_id: str
    catalogue: str
    policy: str


def _day(value: date) -> Date:
    return Date(year=value.year, month=value.month, day=value.day)


def _catalogue_case(content: str) -> list[dict[str, Any]]:
    """A catalogue CSV (examples/data/README.md) as the calc case's ``catalogue``."""
    entries = []
    for row in csv.DictReader(io.StringIO(content)):
        entry: dict[str, Any] = {"code": row["code"], "name": row["name"], "class": row["chrgitm_lv"]}
        if row["selfpay_prop"]:
            entry["selfpay_ratio"] = row["selfpay_prop"]
        if row["pric_uplmt_amt"]:
            entry["price_ceiling"] = row["pric_uplmt_amt"]
        restriction = {
            key: row[column].split(";")
            for key, column in (
                ("med_types", "restriction_med_types"),
                ("diagnosis_prefixes", "restriction_diagnosis_prefixes"),
            )
            if row[column]
        }
        if restriction:
            entry["restriction"] = restriction
        entries.append(entry)
    return entries


def _core_amounts(
    visit: Encounter,
    service_date: date,
    person: person_pb2.PersonSnapshot,
    before: dict[str, int],
    versions: Versions,
) -> tuple[int, ...]:
    """What the settlement core pays for the visit under one catalogue and one policy version, in fen."""
    category = filing_category_pb2.FilingCategory.Name(person.filing_category)
    tables: dict[str, dict[str, str]] = {"deductible": {}, "segment": {}, "cap": {}}
    for name, fen in before.items():
        kind, _, key = name.partition(":")
        if kind in tables:
            tables[kind][key] = str(from_fen(fen))
    case = {
        "visit": {
            "med_type": visit.med_type,
            "service_date": service_date.isoformat(),
            "institution_level": visit.institution_level,
            "diagnoses": list(visit.diagnoses),
            **({"chronic_disease": visit.chronic_disease} if visit.chronic_disease else {}),
        },
        "person": {
            "insutype": person.insutype,
            "psn_type": person.psn_type,
            "filing_category": category.removeprefix("FILING_CATEGORY_").lower(),
        },
        "accumulators": tables,
        "catalogue": _catalogue_case(versions.catalogue),
        "policy": tomllib.loads(versions.policy),
        "items": [
            {"sn": f"{index:04d}", "code": line.code, "qty": line.quantity, "price": line.price}
            for index, line in enumerate(visit.bill, start=1)
        ],
    }
    settlement = parse_case(case).settle()
    return tuple(to_fen(getattr(settlement, name)) for name in _AMOUNTS)


def _amounts(settlement: settlement_pb2.Settlement) -> tuple[int, ...]:
    amounts = settlement.result.amounts
    return tuple(getattr(amounts, f"{name}_fen") for name in _AMOUNTS)


def _import_second_versions(federation: Federation) -> tuple[str, str]:
    """Beijing's catalogue and Langfang's employee policy, each a new version from CHANGE_DAY: their ids."""
    catalogue = (
        catalogue_service_pb2_grpc.CatalogueServiceStub(federation.channel(BEIJING))
        .ImportCatalogue(
            iter(
                (
                    catalogue_service_pb2.ImportCatalogueRequest(
                        header=catalogue_service_pb2.ImportCatalogueHeader(
                            request_id=message_id(BEIJING),
                            admdvs=BEIJING,
                            layer=catalogue_pb2.CATALOGUE_LAYER_PROVINCIAL_OVERLAY,
                            effective_date=_day(CHANGE_DAY),
                        )
                    ),
                    catalogue_service_pb2.ImportCatalogueRequest(csv_chunk=CATALOGUE_V2.encode("utf-8")),
                )
            ),
            timeout=30,
        )
        .version
    )
    policy = (
        policy_service_pb2_grpc.PolicyServiceStub(federation.channel(LANGFANG))
        .ImportPolicy(
            policy_service_pb2.ImportPolicyRequest(
                request_id=message_id(LANGFANG),
                insuplc_admdvs=LANGFANG,
                insutype="310",
                effective_date=_day(CHANGE_DAY),
                format=policy_service_pb2.POLICY_FORMAT_TOML,
                document=POLICY_V2.encode("utf-8"),
            ),
            timeout=30,
        )
        .policy
    )
    return catalogue.version_id, policy.version_id


def _versions_before(federation: Federation) -> tuple[str, str]:
    """The catalogue and policy versions in force the day before the change (the samples')."""
    day = _day(date(2022, 6, 30))
    catalogue = catalogue_service_pb2_grpc.CatalogueServiceStub(federation.channel(BEIJING)).LookupItems(
        catalogue_service_pb2.LookupItemsRequest(admdvs=BEIJING, codes=[REPAGLINIDE], date=day), timeout=20
    )
    policy = policy_service_pb2_grpc.PolicyServiceStub(federation.channel(LANGFANG)).GetPolicy(
        policy_service_pb2.GetPolicyRequest(insuplc_admdvs=LANGFANG, insutype="310", date=day), timeout=20
    )
    return catalogue.overlay_version_id, policy.policy.version_id


def _settle(
    federation: Federation, window: Window, visit: Encounter
) -> tuple[settlement_pb2.Settlement, person_pb2.PersonSnapshot, dict[str, int], str]:
    """The HIS's whole flow: the settlement, the person, the accumulators before it, the upload's catalogue version."""
    person = window.verify(visit)
    before = accumulators(federation, LANGFANG, person.psn_no, visit.service_date.year)
    registered = window.register(visit, person)
    uploaded = window.upload(visit, registered)
    if visit.inpatient:
        registered = window.discharge(visit, registered)
    settlement = window.settle(window.settle_request(visit, registered, window.request_id()))
    return settlement, person, before, uploaded.catalogue_version


def _check(
    settlement: settlement_pb2.Settlement,
    in_force: Versions,
    other: Versions,
    visit: Encounter,
    service_date: date,
    person: person_pb2.PersonSnapshot,
    before: dict[str, int],
) -> None:
    """The settlement names ``in_force``'s versions and pays what the core pays under them, unlike ``other``'s."""
    assert (settlement.result.catalogue_version, settlement.result.policy_version) == (
        in_force.catalogue_id,
        in_force.policy_id,
    )
    expected = _core_amounts(visit, service_date, person, before, in_force)
    assert _amounts(settlement) == expected
    assert expected != _core_amounts(visit, service_date, person, before, other), (
        "the versions pay differently"
    )


def _diabetes_visit(day: date) -> Encounter:
    return Encounter(
        patient=LANGFANG_RETIREE,
        fixmedins_code=HOSPITAL,
        med_type="14",
        service_date=day,
        begin_time=datetime(day.year, day.month, day.day, 9, 30, tzinfo=CHINA_STANDARD_TIME),
        diagnoses=("E11.900",),
        chronic_disease="M01600",
        bill=DIABETES_DRUGS,
    )


def test_visits_on_either_side_of_a_mid_year_change_settle_with_the_versions_in_force_that_day(
    tmp_path: Path, database_factory: DatabaseFactory
) -> None:
    """2022-06-30 settles with the samples' catalogue and policy, 2022-07-01 with the second versions.

    An inpatient stay admitted on 2022-06-28 and discharged on 2022-07-02 settles with the
    versions in force on the discharge day: DischargeVisit moves the visit's service date to
    the (China calendar) day of discharge, Settle classifies the lines again with the
    treatment catalogue of that day (the upload's classification, with the admission day's
    catalogue, was provisional), and the insured node applies its policy of that day.
    """
    with loaded_federation(tmp_path, database_factory, (NATIONAL, BEIJING, HEBEI, LANGFANG)) as federation:
        assert CATALOGUE_V2 != CATALOGUE_V1 and POLICY_V2 != POLICY_V1, "the second versions change something"
        catalogue_v1, policy_v1 = _versions_before(federation)
        catalogue_v2, policy_v2 = _import_second_versions(federation)
        assert catalogue_v1 != catalogue_v2 and policy_v1 != policy_v2
        stage = stage_of(federation)
        file_for(
            stage,
            record_for(LANGFANG_RETIREE, HOSPITAL),
            treatment_admdvs=BEIJING,
            category=filing_category_pb2.FILING_CATEGORY_RETIREE_RESETTLED,
            channel=filing_pb2.FILING_CHANNEL_NATIONAL_APP,
            start_date=date(2022, 1, 1),
            retroactive=True,
            designated=(HOSPITAL,),
        )
        window = stage.window(HOSPITAL)
        first = Versions(catalogue_v1, policy_v1, CATALOGUE_V1, POLICY_V1)
        second = Versions(catalogue_v2, policy_v2, CATALOGUE_V2, POLICY_V2)

        for day, in_force, other in ((date(2022, 6, 30), first, second), (CHANGE_DAY, second, first)):
            visit = _diabetes_visit(day)
            settlement, person, before, uploaded_with = _settle(federation, window, visit)
            assert uploaded_with == in_force.catalogue_id
            _check(settlement, in_force, other, visit, day, person, before)

        discharge_day = date(2022, 7, 2)
        stay = Encounter(
            patient=LANGFANG_RETIREE,
            fixmedins_code=HOSPITAL,
            med_type="21",
            service_date=date(2022, 6, 28),
            begin_time=datetime(2022, 6, 28, 10, 0, tzinfo=CHINA_STANDARD_TIME),
            end_time=datetime(2022, 7, 2, 10, 0, tzinfo=CHINA_STANDARD_TIME),
            diagnoses=("I21.000",),
            bill=STENT_STAY,
        )
        settlement, person, before, uploaded_with = _settle(federation, window, stay)
        assert uploaded_with == catalogue_v1, (
            "lines uploaded during the stay are classified for the admission day"
        )
        _check(settlement, second, first, stay, discharge_day, person, before)
