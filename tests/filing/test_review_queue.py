"""The review queue a region with 390 applications a day and 2 reviewers works through, and its metrics."""

from __future__ import annotations

import urllib.request
from concurrent.futures import ThreadPoolExecutor

from filing_builders import (
    APP,
    BEIJING,
    LANGFANG,
    SHENZHEN,
    WINDOW,
    Clock,
    application,
    certno,
    enrol,
    iso,
    person,
    request_id,
    set_rules,
)

from yidi.filing.v1 import filing_service_pb2 as api
from yidi.filing.v1 import filing_service_pb2_grpc as api_grpc
from yidi_runtime.server import Node

PER_DAY = 195


def _queue(
    stub: api_grpc.FilingServiceStub, **fields: object
) -> tuple[list[api.PendingReview], list[api.ListPendingReviewsResponse]]:
    items, pages, token = [], [], ""
    while True:
        page = stub.ListPendingReviews(
            api.ListPendingReviewsRequest(insuplc_admdvs=LANGFANG, page_size=100, page_token=token, **fields)  # type: ignore[arg-type]
        )
        items += page.reviews
        pages.append(page)
        token = page.next_page_token
        if not token:
            return items, pages


def test_390_applications_and_2_reviewers_see_the_queue_by_deadline_with_overdue_marked(
    stub: api_grpc.FilingServiceStub, clock: Clock
) -> None:
    set_rules(stub, LANGFANG, review_deadline_working_days=2)
    numbers = [certno(LANGFANG, n) for n in range(2 * PER_DAY)]
    enrol(stub, *(person(number, LANGFANG) for number in numbers))
    submitted: dict[str, str] = {}
    with ThreadPoolExecutor(8) as pool:
        for first_day, batch in (("2026-03-05", numbers[:PER_DAY]), ("2026-03-06", numbers[PER_DAY:])):
            clock.set(first_day)  # Thursday, then Friday
            answers = pool.map(
                lambda n: stub.CreateFiling(application(n, LANGFANG, BEIJING, channel=WINDOW)), batch
            )
            submitted |= {answer.filing.filing_id: first_day for answer in answers}
    assert len(submitted) == 2 * PER_DAY

    clock.set("2026-03-09")  # Monday: each reviewer decided 20 of Thursday's applications
    thursday = [filing_id for filing_id, on in submitted.items() if on == "2026-03-05"]
    for reviewer, chunk in (("reviewer-a", thursday[:20]), ("reviewer-b", thursday[20:40])):
        for filing_id in chunk:
            stub.ReviewFiling(
                api.ReviewFilingRequest(
                    request_id=request_id(),
                    filing_id=filing_id,
                    decision=api.REVIEW_DECISION_APPROVE,
                    reviewer=reviewer,
                )
            )

    clock.set("2026-03-10")  # Tuesday: Thursday's deadline (Monday) has passed, Friday's is today
    items, pages = _queue(stub)
    assert [(p.total_size, p.overdue_count) for p in pages] == [(2 * PER_DAY - 40, PER_DAY - 40)] * 4
    assert [len(p.reviews) for p in pages] == [100, 100, 100, 50]
    deadlines = [iso(item.filing.review_deadline) for item in items]
    assert deadlines == sorted(deadlines) and set(deadlines) == {"2026-03-09", "2026-03-10"}
    late = [item for item in items if item.overdue]
    assert len(late) == PER_DAY - 40 and items[: len(late)] == late
    assert {(iso(i.filing.review_deadline), i.working_days_left, i.overdue) for i in items} == {
        ("2026-03-09", -1, True),
        ("2026-03-10", 0, False),
    }
    overdue_only, _ = _queue(stub, overdue_only=True)
    assert overdue_only == late


def test_applications_decisions_and_the_queue_are_on_the_node_metrics(
    filing_node: Node, stub: api_grpc.FilingServiceStub, clock: Clock
) -> None:
    set_rules(stub, SHENZHEN, auto_approve=True)
    instant, queued = certno(SHENZHEN, 1), certno(LANGFANG, 2)
    enrol(stub, person(instant, SHENZHEN), person(queued, LANGFANG))
    stub.CreateFiling(application(instant, SHENZHEN, BEIJING, channel=APP))
    stub.CreateFiling(application(instant, SHENZHEN, BEIJING, channel=APP))
    stub.CreateFiling(application(queued, LANGFANG, BEIJING, channel=WINDOW))
    clock.set("2026-03-06")

    assert filing_node.metrics_endpoint is not None
    url = f"http://127.0.0.1:{filing_node.metrics_endpoint.port}/metrics"
    exposition = urllib.request.urlopen(url, timeout=5).read().decode()
    assert 'yidi_filing_applications_total{channel="national_app",outcome="approved"} 1.0' in exposition
    assert 'yidi_filing_applications_total{channel="national_app",outcome="existing"} 1.0' in exposition
    assert 'yidi_filing_applications_total{channel="window",outcome="pending_review"} 1.0' in exposition
    assert 'yidi_filing_pending_reviews{insuplc_admdvs="131000"} 1.0' in exposition
    assert 'yidi_filing_overdue_reviews{insuplc_admdvs="131000"} 1.0' in exposition
    assert 'yidi_filing_time_to_decision_seconds_count{decided_by="auto"} 1.0' in exposition
