"""Filing service: enrolment, auto-approved applications, eligibility checks and the review queue.

Starts a filing-only national node in process (SQLite in a temporary folder by default, or
``--database-url`` for PostgreSQL), enrols persons in one ImportInsuredPersons batch, then
times through the generated stub, one call at a time: CreateFiling approved instantly (one
round trip, Shenzhen-style self-service), CreateFiling queued for review, CheckEligibility,
and a 100-item ListPendingReviews page of the resulting queue. Prints p50/p99 latencies and
the machine, and writes bench/results/filing_bench_<database>.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from measure import against_baseline, bare_grpc_baseline, bench_node, database_name, machine, timed
from yidi.filing.v1 import filing_pb2 as pb
from yidi.filing.v1 import filing_service_pb2 as api
from yidi.filing.v1 import filing_service_pb2_grpc as api_grpc
from yidi.filing.v1 import insured_person_pb2 as person_pb
from yidi.type.v1 import filing_category_pb2
from yidi_harness.stories import resident_id
from yidi_runtime.wire import china_day, date_message, wall_clock

RESULTS = Path(__file__).resolve().parent / "results"
AUTO, MANUAL = "440300", "131000"
_ids = iter(range(10**9))


def certno(region: str, serial: int) -> str:
    return resident_id(region, serial, born=19400101)


def request_id() -> str:
    return f"000000000000{time.strftime('%Y%m%d%H%M%S')}{next(_ids) % 10000:04d}"


def application(number: str, region: str, channel: int) -> api.CreateFilingRequest:
    return api.CreateFilingRequest(
        request_id=request_id(),
        person=person_pb.PersonLookup(certno=number),
        insuplc_admdvs=region,
        treatment_admdvs="110000",
        category=filing_category_pb2.FILING_CATEGORY_TEMPORARY_OTHER,
        channel=channel,  # type: ignore[arg-type]
    )


def run(stub: api_grpc.FilingServiceStub, count: int) -> dict[str, object]:
    for region, auto in ((AUTO, True), (MANUAL, False)):
        rules = pb.FilingRules(
            insuplc_admdvs=region,
            auto_approve=auto,
            review_deadline_working_days=3,
            temporary_validity_months=6,
        )
        stub.SetFilingRules(api.SetFilingRulesRequest(request_id=request_id(), rules=rules))
    auto_people = [certno(AUTO, n) for n in range(count)]
    manual_people = [certno(MANUAL, n) for n in range(count)]
    persons = [
        person_pb.InsuredPerson(
            certno=number,
            psn_name="样例",
            insuplc_admdvs=number[:6],
            insutype="310",
            psn_type="1101",
            credential_activated=True,
        )
        for number in auto_people + manual_people
    ]
    started = time.perf_counter()
    stub.ImportInsuredPersons(
        api.ImportInsuredPersonsRequest(request_id=request_id(), persons=persons), timeout=600
    )
    enrol_s = time.perf_counter() - started
    figures: dict[str, object] = {"enrol_persons": len(persons), "enrol_s": round(enrol_s, 2)}
    figures["create_auto_approved"] = timed(
        lambda i: stub.CreateFiling(application(auto_people[i], AUTO, pb.FILING_CHANNEL_NATIONAL_APP)), count
    )
    figures["create_queued"] = timed(
        lambda i: stub.CreateFiling(application(manual_people[i], MANUAL, pb.FILING_CHANNEL_WINDOW)), count
    )
    # The service's "today" is the calendar day in China, whatever the machine's zone.
    day = date_message(china_day(wall_clock()))
    figures["check_eligibility"] = timed(
        lambda i: stub.CheckEligibility(
            api.CheckEligibilityRequest(
                person=person_pb.PersonLookup(certno=auto_people[i]),
                insuplc_admdvs=AUTO,
                treatment_admdvs="110105",
                service_date=day,
                med_type="21",
            )
        ),
        count,
    )
    figures["pending_page_100"] = timed(
        lambda _: stub.ListPendingReviews(
            api.ListPendingReviewsRequest(insuplc_admdvs=MANUAL, page_size=100)
        ),
        min(count, 200),
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (default: SQLite in a temp dir)")
    parser.add_argument("--applications", type=int, default=1000, help="applications per kind (and persons)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    baseline = bare_grpc_baseline()
    print(f"bare gRPC echo on loopback: p50 {baseline['p50_ms']} ms, p99 {baseline['p99_ms']} ms")
    database = database_name(args.database_url)
    with bench_node("filing", args.database_url) as channel:
        figures = run(api_grpc.FilingServiceStub(channel), args.applications)
    print(f"{database}: enrolled {figures['enrol_persons']} persons in one batch in {figures['enrol_s']} s")
    for name, figure in figures.items():
        if isinstance(figure, dict):
            print(f"  {name}: {figure['calls']} calls, {against_baseline(figure, baseline)}")
    RESULTS.mkdir(exist_ok=True)
    document = {"machine": machine(), "database": database, "bare_grpc": baseline, **figures}
    (RESULTS / f"filing_bench_{database}.json").write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
