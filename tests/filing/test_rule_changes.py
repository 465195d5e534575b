"""When Shenzhen tightens its filing rules, the filings made under the old ones are rechecked and an operator decides.

Rules v1 approve self-service applications instantly, accept personal commitments, allow two
designated institutions and six months of temporary validity. v2 (effective today) reviews
everything by hand, wants proofs, allows one institution and twelve months. The node lists
exactly the open filings v2 would refuse, each with the refusals a new application would get;
filings that still pass, and closed ones, are not listed. The operator keeps one, cancels one,
asks materials of another; a repeat replays, a second decision is refused, and so are other
regions' operators and institutions. A correction on the same day (v3, commitments accepted
again) supersedes what v3 lets pass and rechecks the rest. A city node relays the calls to the
insured place's node like every filing call. The CLI lists and decides; the migration numbers
existing rules and marks existing filings legacy.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import grpc
from filing_builders import (
    APP,
    BEIJING,
    PENDING,
    RESIDENT,
    SHENZHEN,
    TEMPORARY,
    WINDOW,
    application,
    certno,
    day,
    enrol,
    iso,
    person,
    refusal,
    request_id,
    set_rules,
)
from sqlalchemy import text
from test_filing_cli import yidi

from yidi.filing.v1 import filing_pb2 as pb
from yidi.filing.v1 import filing_service_pb2 as api
from yidi.filing.v1 import filing_service_pb2_grpc as api_grpc
from yidi_runtime.auth import PRINCIPAL_HEADER
from yidi_runtime.config import Peer
from yidi_runtime.db import Database, service_url
from yidi_runtime.migrate import downgrade, upgrade
from yidi_runtime.server import Node
from yidi_services.node import GROUPS
from yidi_testing import settings_for

OPERATOR = "operator/000000/reviewer"
AS_OPERATOR = ((PRINCIPAL_HEADER, OPERATOR),)
COMMITMENT = pb.FilingMaterials(personal_commitment=True)
V2 = {
    "auto_approve": False,
    "commitment_accepted": False,
    "outpatient_designations_required": 1,
    "temporary_validity_months": 12,
    "effective_date": day("2026-03-02"),
}
KEEP, CANCEL, REQUIRE_MATERIALS = (
    api.RECHECK_DECISION_KEEP,
    api.RECHECK_DECISION_CANCEL,
    api.RECHECK_DECISION_REQUIRE_MATERIALS,
)


def _rechecks(
    stub: api_grpc.FilingServiceStub, state: int = api.FILING_RECHECK_STATE_PENDING
) -> dict[str, Any]:
    """filing id → (old version, new version, {(reason, field)}) of every recheck in ``state``, page by page."""
    found: dict[str, Any] = {}
    token = ""
    while True:
        page = stub.ListFilingRechecks(
            api.ListFilingRechecksRequest(
                insuplc_admdvs=SHENZHEN, state=state, page_size=2, page_token=token
            ),  # type: ignore[arg-type]
            metadata=AS_OPERATOR,
        )
        for recheck in page.rechecks:
            failures = {(failure.reason, failure.field) for failure in recheck.failures}
            found[recheck.filing.filing_id] = (recheck.old_rules_version, recheck.new_rules_version, failures)
        token = page.next_page_token
        if not token:
            return found


def _decide(
    stub: api_grpc.FilingServiceStub, filing_id: str, decision: int, reason: str = "", rid: str = ""
) -> api.FilingRecheck:
    return stub.DecideFilingRecheck(
        api.DecideFilingRecheckRequest(
            request_id=rid or request_id(),
            filing_id=filing_id,
            decision=decision,  # type: ignore[arg-type]
            reason=reason,
        ),
        metadata=AS_OPERATOR,
    ).recheck


def _gauge(node: Node) -> str:
    assert node.metrics_endpoint is not None
    url = f"http://127.0.0.1:{node.metrics_endpoint.port}/metrics"
    exposition = urllib.request.urlopen(url, timeout=5).read().decode()
    return next(
        (
            line.rsplit(" ", 1)[1]
            for line in exposition.splitlines()
            if line.startswith("yidi_filing_pending_rechecks{")
        ),
        "absent",
    )


def test_filings_made_under_old_rules_are_rechecked_listed_with_why_and_decided_once(
    start_filing_node: Callable[..., Node], filing_node: Node, stub: api_grpc.FilingServiceStub
) -> None:
    assert (
        set_rules(stub, SHENZHEN, auto_approve=True, outpatient_designations_required=2).version == "440300/1"
    )
    a, b, c, d, e, h, f = (certno(SHENZHEN, n) for n in range(1, 8))
    enrol(stub, *(person(number, SHENZHEN) for number in (a, b, c, d, e, h, f)))

    def file(number: str, category: int, channel: int, **fields: Any) -> pb.Filing:
        return stub.CreateFiling(application(number, SHENZHEN, BEIJING, category, channel, **fields)).filing

    committed = file(a, RESIDENT, APP, materials=COMMITMENT)
    proven = file(b, RESIDENT, WINDOW, materials=pb.FilingMaterials(residence_proof_id="R-2"))
    two_chosen = file(c, TEMPORARY, WINDOW, designated_institutions=["H11010500001", "H11010500002"])
    also_committed = file(d, RESIDENT, APP, materials=COMMITMENT)
    cancelled = file(e, TEMPORARY, APP)
    queued = file(h, RESIDENT, WINDOW, materials=COMMITMENT)
    stub.ReviewFiling(
        api.ReviewFilingRequest(
            request_id=request_id(),
            filing_id=proven.filing_id,
            decision=api.REVIEW_DECISION_APPROVE,
            reviewer="r",
        )
    )
    stub.CancelFiling(api.CancelFilingRequest(request_id=request_id(), filing_id=cancelled.filing_id))
    assert committed.rules_version == "440300/1" and two_chosen.state == PENDING

    assert set_rules(stub, SHENZHEN, **V2).version == "440300/2"
    v1_to_v2 = ("440300/1", "440300/2")
    by_hand_and_proof = {("REVIEW_REQUIRED", "state"), ("MATERIALS_REQUIRED", "materials.residence_proof_id")}
    assert _rechecks(stub) == {
        committed.filing_id: (*v1_to_v2, by_hand_and_proof),
        two_chosen.filing_id: (
            *v1_to_v2,
            {("INVALID_ARGUMENT", "designated_institutions"), ("INVALID_ARGUMENT", "end_date")},
        ),
        also_committed.filing_id: (*v1_to_v2, by_hand_and_proof),
        queued.filing_id: (*v1_to_v2, {("MATERIALS_REQUIRED", "materials.residence_proof_id")}),
    }
    assert _gauge(filing_node) == "4.0"
    assert file(f, TEMPORARY, APP).rules_version == "440300/2"

    keep_id = request_id()
    kept = _decide(stub, committed.filing_id, KEEP, "resident for years", keep_id)
    assert (kept.state, kept.decided_by, kept.decision_reason) == (
        api.FILING_RECHECK_STATE_KEPT,
        OPERATOR,
        "resident for years",
    )
    assert _decide(stub, committed.filing_id, KEEP, "resident for years", keep_id) == kept
    code, reason, *_ = refusal(lambda: _decide(stub, committed.filing_id, CANCEL, "changed my mind"))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "RECHECK_STATE")
    assert (
        stub.GetFiling(api.GetFilingRequest(filing_id=committed.filing_id)).filing.state
        == pb.FILING_STATE_APPROVED
    )

    assert refusal(lambda: _decide(stub, two_chosen.filing_id, REQUIRE_MATERIALS))[1:3] == (
        "INVALID_ARGUMENT",
        ["decision"],
    )
    assert refusal(lambda: _decide(stub, two_chosen.filing_id, CANCEL))[1:3] == (
        "INVALID_ARGUMENT",
        ["reason"],
    )
    _decide(stub, two_chosen.filing_id, CANCEL, "v2 allows one designated institution")
    gone = stub.GetFiling(api.GetFilingRequest(filing_id=two_chosen.filing_id)).filing
    assert (gone.state, gone.state_reason) == (
        pb.FILING_STATE_CANCELLED,
        "v2 allows one designated institution",
    )

    assert (
        _decide(stub, also_committed.filing_id, REQUIRE_MATERIALS).state
        == api.FILING_RECHECK_STATE_MATERIALS_REQUIRED
    )
    waiting = stub.GetFiling(api.GetFilingRequest(filing_id=also_committed.filing_id)).filing.materials
    assert (
        waiting.to_complete_later and iso(waiting.complete_by) == "2026-03-05"
    )  # v2: 3 working days to review
    stub.CompleteMaterials(
        api.CompleteMaterialsRequest(
            request_id=request_id(),
            filing_id=also_committed.filing_id,
            materials=pb.FilingMaterials(residence_proof_id="R-4"),
        )
    )

    for subject, expected in (
        ("operator/130000/ops", "PERMISSION_DENIED_REGION"),
        ("institution/H44030500001", "PERMISSION_DENIED_ROLE"),
    ):
        other = ((PRINCIPAL_HEADER, subject),)
        listing = api.ListFilingRechecksRequest(insuplc_admdvs=SHENZHEN)
        deciding = api.DecideFilingRecheckRequest(
            request_id=request_id(), filing_id=queued.filing_id, decision=KEEP
        )
        assert refusal(lambda: stub.ListFilingRechecks(listing, metadata=other))[1] == expected  # noqa: B023
        assert refusal(lambda: stub.DecideFilingRecheck(deciding, metadata=other))[1] == expected  # noqa: B023
    assert _gauge(filing_node) == "1.0"

    # v3 corrects v2 on the same day: commitments count again, so the queued filing now passes.
    assert set_rules(stub, SHENZHEN, **(V2 | {"commitment_accepted": True})).version == "440300/3"
    by_hand = {("REVIEW_REQUIRED", "state")}
    assert _rechecks(stub) == {
        committed.filing_id: ("440300/1", "440300/3", by_hand),
        also_committed.filing_id: ("440300/1", "440300/3", by_hand),
    }
    assert set(_rechecks(stub, api.FILING_RECHECK_STATE_SUPERSEDED)) == {queued.filing_id}
    assert len(_rechecks(stub, api.FILING_RECHECK_STATE_UNSPECIFIED)) == 4  # filing id → its latest recheck
    assert refusal(lambda: _decide(stub, queued.filing_id, KEEP))[1] == "RECHECK_STATE"

    # A city node relays both calls to the insured place's node, like every filing call.
    city = start_filing_node(role="city", region="330400", parent=Peer("000000", filing_node.address))
    with grpc.insecure_channel(city.address) as channel:
        relayed = api_grpc.FilingServiceStub(channel)
        assert _rechecks(relayed) == _rechecks(stub)
        assert (
            _decide(relayed, committed.filing_id, KEEP, "still resident").state
            == api.FILING_RECHECK_STATE_KEPT
        )
    assert set(_rechecks(stub)) == {also_committed.filing_id}

    # The person cancels the other filing before anyone decides: its recheck reads as closed.
    stub.CancelFiling(api.CancelFilingRequest(request_id=request_id(), filing_id=also_committed.filing_id))
    assert _rechecks(stub) == {} and set(_rechecks(stub, api.FILING_RECHECK_STATE_CLOSED)) == {
        also_committed.filing_id
    }
    assert refusal(lambda: _decide(stub, also_committed.filing_id, KEEP))[1] == "RECHECK_STATE"
    assert _gauge(filing_node) == "absent"


def test_the_migration_numbers_existing_rules_and_marks_existing_filings_legacy(
    tmp_path: Path, empty_database_url: str | None
) -> None:
    group = GROUPS["filing"]
    database = Database.open("filing", service_url(settings_for(tmp_path, empty_database_url), "filing"))
    try:
        upgrade(database, group.versions, group.metadata, "filing_0003")
        with database.engine.begin() as connection:
            for effective in ("2026-01-01", "2025-01-01"):
                connection.execute(
                    text("INSERT INTO filing_rules VALUES ('440300', :day, :document)"),
                    {"day": date.fromisoformat(effective), "document": "{}"},
                )
            connection.execute(
                text(
                    "INSERT INTO filing_persons VALUES ('P1', :certno, '张三', '440300', '310', '1201', NULL, "
                    ":yes, :yes, '', :now, :now)"
                ),
                {"certno": certno(SHENZHEN, 1), "yes": True, "now": datetime.now(UTC)},
            )
            connection.execute(
                text(
                    "INSERT INTO filing_filings VALUES ('F1', 'P1', '440300', '110000', 'referral', 'window', "
                    "'{}', '{}', '[]', :day, NULL, :no, 'approved', '', NULL, '', '', :now, NULL, '', '')"
                ),
                {"day": date(2026, 3, 2), "no": False, "now": datetime.now(UTC)},
            )
        upgrade(database, group.versions, group.metadata)
        with database.engine.connect() as connection:
            numbered = connection.execute(
                text("SELECT effective_date, version FROM filing_rules ORDER BY effective_date")
            ).all()
            assert [(str(effective), version) for effective, version in numbered] == [
                ("2025-01-01", 1),
                ("2026-01-01", 2),
            ]
            assert connection.execute(text("SELECT rules_version FROM filing_filings")).scalar() == "legacy"
        downgrade(database, group.versions, group.metadata, "filing_0003")
        upgrade(database, group.versions, group.metadata)
    finally:
        database.engine.dispose()


def test_the_cli_lists_rechecks_and_decides_one(filing_node: Node, stub: api_grpc.FilingServiceStub) -> None:
    set_rules(stub, SHENZHEN, auto_approve=True)
    number = certno(SHENZHEN, 9)
    enrol(stub, person(number, SHENZHEN))
    filing_id = stub.CreateFiling(
        application(number, SHENZHEN, BEIJING, RESIDENT, APP, materials=COMMITMENT)
    ).filing.filing_id
    set_rules(stub, SHENZHEN, **V2)

    listed = yidi(filing_node, "rechecks", "--region", SHENZHEN)
    assert listed.returncode == 0, listed.stderr
    assert filing_id in listed.stdout and "440300/1 → 440300/2" in listed.stdout
    assert "MATERIALS_REQUIRED materials.residence_proof_id" in listed.stdout
    kept = yidi(filing_node, "decide-recheck", filing_id, "--decision", "keep", "--reason", "long resident")
    assert kept.returncode == 0, kept.stderr
    assert f"recheck of {filing_id}: kept" in kept.stdout
    again = yidi(filing_node, "decide-recheck", filing_id, "--decision", "cancel", "--reason", "no")
    assert again.returncode == 1 and "RECHECK_STATE" in again.stderr
