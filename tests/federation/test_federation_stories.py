"""The seed stories end to end on a federation in one process: each played through the HIS stubs.

Every story runs on its own freshly loaded federation (the national node, seven provinces,
the Langfang and Jiaxing city nodes), on SQLite files and on PostgreSQL. The assertions read
the settlement the HIS received and what the nodes recorded, through the public stubs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from yidi.clearing.v1 import journal_pb2
from yidi.filing.v1 import filing_pb2
from yidi.settlement.v1 import settlement_pb2, settlement_service_pb2, settlement_service_pb2_grpc
from yidi.type.v1 import fee_item_pb2, filing_category_pb2
from yidi_harness.federation import DEMO_TOPOLOGY, Federation, load_sample_data, start_federation
from yidi_harness.stories import STORIES, Stage, StoryResult


@pytest.fixture
def federation(tmp_path: Path, database_factory: Callable[[], str | None]) -> Iterator[Federation]:
    with start_federation(DEMO_TOPOLOGY, tmp_path, database_factory) as started:
        load_sample_data(started)
        yield started


def play(federation: Federation, number: int) -> StoryResult:
    result = STORIES[number - 1].play(Stage(federation, datetime.now(UTC)))
    assert not result.failure, f"story {number} stopped: {result.failure}\n" + "\n".join(result.steps)
    failed = [description for description, held in result.expectations if not held]
    assert not failed, f"story {number}: {failed}"
    return result


def settled(result: StoryResult) -> settlement_pb2.Settlement:
    """The settlement, after checking the identities every settlement satisfies."""
    assert result.settlement is not None
    settlement = result.settlement
    amounts = settlement.result.amounts
    assert amounts.fund_pay_sumamt_fen + amounts.psn_part_amt_fen == amounts.medfee_sumamt_fen
    assert amounts.acct_pay_fen + amounts.psn_cash_pay_fen == amounts.psn_part_amt_fen
    assert sum(item.det_item_fee_sumamt_fen for item in settlement.result.items) == amounts.medfee_sumamt_fen
    assert settlement.setl_id.startswith(result.treatment_node)
    assert settlement.fixmedins_code == result.fixmedins_code
    assert settlement.insuplc_admdvs == result.patient.insuplc_admdvs
    return settlement


def recorded(federation: Federation, result: StoryResult) -> list[settlement_pb2.Settlement]:
    """Every settlement the treatment node recorded for the story's institution."""
    stub = settlement_service_pb2_grpc.SettlementServiceStub(federation.channel(result.treatment_node))
    listed = stub.ListSettlements(
        settlement_service_pb2.ListSettlementsRequest(fixmedins_code=result.fixmedins_code, page_size=1000),
        timeout=10,
    )
    return list(listed.settlements)


def test_the_worked_example_pays_48_89_from_the_fund_and_15_40_by_the_patient(federation: Federation) -> None:
    result = play(federation, 1)
    settlement = settled(result)
    amounts = settlement.result.amounts
    assert (amounts.medfee_sumamt_fen, amounts.fund_pay_sumamt_fen, amounts.psn_part_amt_fen) == (
        6429,
        4889,
        1540,
    )
    assert result.treatment_node == "110000"
    assert settlement.mdtrtarea_admvs == "110101"
    assert settlement.result.catalogue_version.startswith("110000@2022-01-01")
    assert "131000/310@2022-01-01" in settlement.result.policy_version
    assert [item.chrgitm_lv for item in settlement.result.items] == ["01", "02"]
    assert result.person is not None and result.person.filing_category == (
        filing_category_pb2.FILING_CATEGORY_RETIREE_RESETTLED
    )


def test_the_jiaxing_settlement_whose_answer_was_lost_exists_once_and_reaches_the_journal_once(
    federation: Federation,
) -> None:
    result = play(federation, 2)
    settlement = settled(result)
    assert result.treatment_node == "330400", "treated behind the Jiaxing city node: four hops to Qinghai"
    assert settlement.audit_flag, "a cross-province inpatient bill of 30,000 yuan or more"
    assert result.visit is not None
    same_visit = [s for s in recorded(federation, result) if s.mdtrt_id == result.visit.mdtrt_id]
    assert [s.setl_id for s in same_visit] == [settlement.setl_id]
    [entry] = result.journal_entries
    assert entry.kind == journal_pb2.JOURNAL_ENTRY_KIND_SETTLEMENT
    assert (entry.msgid, entry.setl_id) == (settlement.medins_setl_id, settlement.setl_id)
    assert (entry.insuplc_admdvs, entry.mdtrtarea_admvs) == ("630000", "330402")
    assert entry.fund_pay_sumamt_fen == settlement.result.amounts.fund_pay_sumamt_fen > 0
    assert result.filing is not None and result.filing.state == filing_pb2.FILING_STATE_APPROVED


def test_the_unfiled_patient_is_refused_then_filed_retroactively_by_the_hospital_and_settles(
    federation: Federation,
) -> None:
    result = play(federation, 3)
    assert result.refusals == ["NOT_FILED"]
    filing = result.filing
    assert filing is not None and filing.retroactive
    assert filing.channel == filing_pb2.FILING_CHANNEL_HOSPITAL
    assert filing.state == filing_pb2.FILING_STATE_APPROVED and filing.reviewer != "auto"
    settlement = settled(result)
    assert settlement.result.amounts.fund_pay_sumamt_fen > 0
    by_code = {item.med_list_codg: item for item in settlement.result.items}
    unlisted = by_code["XA10BHS051A001010100008"]
    assert fee_item_pb2.SELF_PAY_REASON_NOT_IN_CATALOGUE in unlisted.self_pay_reasons
    assert unlisted.fulamt_ownpay_amt_fen == unlisted.det_item_fee_sumamt_fen
    assert by_code["XJ01DDT071B002010100003"].overlmt_amt_fen == 1800, "6 × (15.00 − ceiling 12.00)"


def test_the_self_service_filing_is_approved_at_once_and_the_patient_settles_in_shijiazhuang(
    federation: Federation,
) -> None:
    result = play(federation, 4)
    assert result.filing is not None and result.filing.reviewer == "auto"
    settlement = settled(result)
    assert (settlement.insuplc_admdvs, settlement.mdtrtarea_admvs) == ("440300", "130105")
    assert settlement.result.amounts.fund_pay_sumamt_fen > 0


def test_an_inpatient_filing_covers_a_hospital_the_form_does_not_name(federation: Federation) -> None:
    result = play(federation, 5)
    assert result.filing is not None and list(result.filing.designated_institutions) == []
    settlement = settled(result)
    assert settlement.mdtrtarea_admvs == "120112"
    assert settlement.result.amounts.fund_pay_sumamt_fen > 0
    assert result.person is not None and result.person.filing_category == (
        filing_category_pb2.FILING_CATEGORY_TEMPORARY_OTHER
    )
