"""The codec's conversions are inverses: proto → core → proto gives back the message, core → proto → core the value."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from yidi.catalogue.v1 import catalogue_pb2, policy_pb2
from yidi.type.v1 import fee_item_pb2, filing_category_pb2, visit_pb2
from yidi_codec.catalogue import entry_from_proto, entry_to_proto
from yidi_codec.policies import ParsedPolicies, policy_from_proto, policy_to_proto
from yidi_codec.results import item_result_from_proto, item_result_to_proto
from yidi_codec.types import date_from_proto, date_to_proto, filing_category_from_proto
from yidi_codec.visits import visit_from_proto, visit_to_proto
from yidi_core.catalogue import CatalogueEntry, ItemClass, ItemResult, Restriction, SelfPayReason
from yidi_core.errors import DomainError
from yidi_core.money import ONE, ZERO, from_fen
from yidi_core.national_limits import MAX_REDUCTION
from yidi_core.policy import (
    Assistance,
    CivilServant,
    DeductibleScope,
    Funds,
    LowIncome,
    Policy,
    Rule,
    Segment,
    SeriousIllness,
    Supplementary,
)
from yidi_core.settlement import Visit

fen = st.integers(min_value=0, max_value=10**11)
ratio = st.decimals(min_value=0, max_value=1, places=2)
days = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))
keys = st.sampled_from(["pool", "inpatient", "chronic:M01600"])


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    starts = sorted(draw(st.sets(st.integers(min_value=1, max_value=10**9), max_size=3)))
    segments = tuple(Segment(from_fen(start), draw(ratio)) for start in [0, *starts])
    scope = draw(st.sampled_from(list(DeductibleScope)))
    cap = draw(st.none() | fen.map(from_fen))
    return Rule(
        med_types=draw(st.sampled_from([("*",), ("11",), ("14", "21")])),
        psn_types=draw(st.sampled_from([("*",), ("retired",), ("employed", "1201")])),
        institution_levels=draw(st.sampled_from([("*",), ("1", "3")])),
        deductible=from_fen(draw(fen)),
        deductible_scope=scope,
        segments=segments,
        deductible_key=draw(keys) if scope is DeductibleScope.ANNUAL else draw(st.none() | keys),
        segment_key=draw(st.none() | keys),
        cap=cap,
        cap_key=None,  # rules sharing a cap key must agree on the cap: one rule keys its cap below
    )


caps = st.none() | fen.map(from_fen)
scales = st.lists(st.integers(min_value=1, max_value=10**9), max_size=2, unique=True).flatmap(
    lambda starts: st.tuples(
        *(ratio.map(lambda r, s=s: Segment(from_fen(s), r)) for s in [0, *sorted(starts)])
    )
)
funds = st.builds(
    Funds,
    st.none() | st.builds(Supplementary, ratio, caps),
    st.none()
    | st.builds(
        SeriousIllness, fen.map(from_fen), scales, caps, st.none() | st.builds(LowIncome, ratio, ratio, caps)
    ),
    st.none() | st.builds(CivilServant, ratio, ratio),
    st.none() | st.builds(Assistance, ratio, caps, st.sampled_from([("dibao",), ("tekun", "dibao")])),
)
policies = st.builds(
    Policy,
    st.builds(
        lambda first, rest: (replace(first, cap=Decimal("3000.00"), cap_key="pool"), *rest),
        rules(),
        st.lists(rules(), max_size=2),
    ),
    # Within the national limits: a policy beyond them is refused on either side of the wire.
    st.dictionaries(st.sampled_from(["referral", "temporary_other"]), st.decimals(-1, 1, places=2)).map(
        lambda table: {category: max(value, -MAX_REDUCTION[category]) for category, value in table.items()}
    ),
    st.fixed_dictionaries({"unreferred": st.decimals("0.01", 1, places=2)}),
    unfiled_direct=st.booleans(),
    funds=funds,
    family_account=st.booleans(),
)


@given(policies)
def test_a_policy_survives_the_wire(policy: Policy) -> None:
    message = policy_to_proto(policy)
    assert policy_from_proto(message) == policy
    assert policy_to_proto(policy_from_proto(message)) == message


def test_a_policy_from_the_wire_is_checked_as_a_whole() -> None:
    message = policy_pb2.Policy(
        rules=[
            policy_pb2.PolicyRule(
                med_types=["*"],
                psn_types=["*"],
                institution_levels=["*"],
                deductible_scope=policy_pb2.DEDUCTIBLE_SCOPE_ANNUAL,
                ratio="1.5",
            )
        ]
    )
    with pytest.raises(DomainError) as refused:
        policy_from_proto(message)
    assert refused.value.reason_code == "INVALID_POLICY"
    assert {v.field for v in refused.value.violations} == {
        "policy.rules[0].deductible_key",
        "policy.rules[0].segments[0].ratio",
    }


def test_a_policys_further_funds_from_the_wire_are_checked() -> None:
    message = policy_to_proto(
        Policy((Rule(("*",), ("*",), ("*",), ZERO, DeductibleScope.PER_VISIT, (Segment(ZERO, ONE),)),))
    )
    message.funds.supplementary.ratio = "1.20"
    message.funds.assistance.ratio = "0.5"
    with pytest.raises(DomainError) as refused:
        policy_from_proto(message)
    assert refused.value.reason_code == "INVALID_POLICY"
    assert {v.field for v in refused.value.violations} == {
        "policy.funds.supplementary.ratio",
        "policy.funds.assistance.categories",
    }


def test_a_policy_version_is_read_once() -> None:
    message = policy_to_proto(
        Policy(
            (
                Rule(
                    ("*",),
                    ("*",),
                    ("*",),
                    Decimal("0.00"),
                    DeductibleScope.PER_VISIT,
                    (Segment(Decimal("0.00"), Decimal("0.9")),),
                ),
            )
        )
    )
    message.version_id = "131000/310@2026-01-01#1"
    cache = ParsedPolicies()
    assert cache.parsed(message) is cache.parsed(message)


restrictions = st.none() | st.builds(
    Restriction,
    st.lists(st.sampled_from(["11", "14", "21"]), min_size=1, unique=True).map(tuple),
    st.lists(st.sampled_from(["E11", "I10"]), unique=True).map(tuple),
)
entries = st.builds(
    CatalogueEntry,
    code=st.sampled_from(["XA10BAA250A001010100445", "001201000010000"]),
    name=st.text(max_size=8),
    item_class=st.sampled_from(list(ItemClass)),
    selfpay_ratio=ratio,
    price_ceiling=st.none() | st.decimals(min_value=0, max_value=10**6, places=6),
    restriction=restrictions,
)


@given(entries)
def test_a_catalogue_entry_survives_the_wire(entry: CatalogueEntry) -> None:
    assert entry_from_proto(entry_to_proto(entry)) == entry


def test_an_empty_restriction_does_not_restrict() -> None:
    item = catalogue_pb2.CatalogueItem(
        code="001201000010000", chrgitm_lv="01", restriction=catalogue_pb2.ItemRestriction()
    )
    assert entry_from_proto(item).restriction is None


visits = st.builds(
    Visit,
    med_type=st.sampled_from(["11", "14", "21"]),
    service_date=days,
    institution_level=st.sampled_from(["1", "2", "3"]),
    diagnoses=st.lists(st.sampled_from(["E11.900", "I10.X00"]), max_size=2).map(tuple),
    chronic_disease=st.none() | st.just("M01600"),
    emergency=st.booleans(),
)
inpatient_parts = st.builds(
    Visit,
    med_type=st.just("21"),
    service_date=days,
    institution_level=st.sampled_from(["1", "2", "3"]),
    deductible_paid_in_stay=st.integers(0, 10**7).map(from_fen),
)


@given(visits | inpatient_parts)
def test_a_visit_survives_the_wire(visit: Visit) -> None:
    message = visit_to_proto(visit)
    assert visit_from_proto(message) == visit
    assert visit_from_proto(message, checked=False) == visit
    assert visit_to_proto(visit_from_proto(message)) == message


def test_a_visit_names_its_first_bad_field_by_the_proto_path() -> None:
    with pytest.raises(DomainError) as refused:
        visit_from_proto(visit_pb2.VisitFacts(med_type="11", institution_level="1"), "visit")
    assert [v.field for v in refused.value.violations] == ["visit.service_date"]
    facts = visit_to_proto(Visit("11", date(2026, 3, 1), "1"))
    facts.service_date.day = 31
    facts.service_date.month = 2
    with pytest.raises(DomainError, match="must be a date YYYY-MM-DD, got '2026-02-31'"):
        visit_from_proto(facts)


def test_only_an_inpatient_stay_carries_a_deductible_paid_by_earlier_parts() -> None:
    facts = visit_to_proto(Visit("11", date(2026, 3, 1), "1"))
    facts.stay_deductible_paid_fen = 100
    with pytest.raises(DomainError) as refused:
        visit_from_proto(facts)
    assert [v.field for v in refused.value.violations] == ["facts.stay_deductible_paid_fen"]
    facts.med_type = "21"
    assert visit_from_proto(facts).deductible_paid_in_stay == from_fen(100)


def test_a_pharmacy_visit_has_no_level() -> None:
    facts = visit_to_proto(Visit("15", date(2026, 3, 1), ""))
    facts.fixmedins_code = "P11010500001"
    assert visit_from_proto(facts).institution_level == ""
    facts.fixmedins_code = "H11010100001"
    with pytest.raises(DomainError):
        visit_from_proto(facts)


@st.composite
def item_results(draw: st.DrawFn) -> ItemResult:
    parts = [from_fen(draw(st.integers(0, 10**8))) for _ in range(4)]
    item_class = draw(st.none() | st.sampled_from(list(ItemClass)))
    return ItemResult(
        sn=draw(st.sampled_from(["1", "2", "A-17"])),
        code="001201000010000",
        name="",
        amount=sum(parts, Decimal("0.00")),
        fulamt_ownpay=parts[0],
        overlmt_selfpay=parts[1],
        preselfpay=parts[2],
        inscp=parts[3],
        item_class=item_class,
        selfpay_ratio=draw(ratio) if item_class else Decimal("0.00"),
        price_ceiling=draw(st.none() | st.decimals(min_value=0, max_value=10**6, places=2)),
        reasons=tuple(draw(st.lists(st.sampled_from(list(SelfPayReason)), unique=True, max_size=2))),
    )


@given(item_results())
def test_a_classified_line_survives_the_wire(line: ItemResult) -> None:
    message = item_result_to_proto(line)
    assert item_result_from_proto(message, 0) == line
    assert item_result_to_proto(item_result_from_proto(message, 0)) == message


def test_a_classified_line_names_a_bad_class() -> None:
    with pytest.raises(DomainError) as refused:
        item_result_from_proto(fee_item_pb2.ItemResult(feedetl_sn="1", chrgitm_lv="09"), 4)
    assert refused.value.reason_code == "INVALID_CODE"
    assert [v.field for v in refused.value.violations] == ["items[4].chrgitm_lv"]


@given(days)
def test_a_day_survives_the_wire(day: date) -> None:
    assert date_from_proto(date_to_proto(day), "day") == day


def test_filing_categories_are_the_policy_keys() -> None:
    assert filing_category_from_proto(filing_category_pb2.FILING_CATEGORY_UNSPECIFIED) is None
    assert (
        filing_category_from_proto(filing_category_pb2.FILING_CATEGORY_RETIREE_RESETTLED)
        == "retiree_resettled"
    )
    with pytest.raises(DomainError, match="unknown filing category 99"):
        filing_category_from_proto(99)
