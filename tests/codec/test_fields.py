"""One collector of field violations and one renamer from core paths to the proto's."""

from __future__ import annotations

import pytest

from yidi.type.v1 import fee_item_pb2
from yidi_codec.fee_items import fee_items_from_proto
from yidi_codec.fields import Violations, proto_path, proto_paths
from yidi_core.errors import DomainError, InvalidArgument, invalid


@pytest.mark.parametrize(
    ("core", "proto"),
    [
        ("items[2].qty", "bill.items[2].cnt"),
        ("items[0].sn", "bill.items[0].feedetl_sn"),
        ("items[3].price", "bill.items[3].pric"),
        ("items[1].amount", "bill.items[1].det_item_fee_sumamt_fen"),
        ("items[1]", "bill.items[1]"),
        ("items", "bill.items"),
        ("person.account_balance", "account_balance_fen"),
        ("accumulators.cap.pool", "accumulators.cap_fen[pool]"),
        ("visit.med_type", "visit.med_type"),
    ],
)
def test_core_paths_are_renamed_to_the_proto_paths(core: str, proto: str) -> None:
    assert proto_path(core, "bill.items") == proto


def test_a_renamed_refusal_keeps_its_reason_and_metadata() -> None:
    error = invalid("INVALID_ARGUMENT", "items[2].qty", "must be positive", metadata={"sn": "3"})
    renamed = proto_paths(error)
    assert isinstance(renamed, InvalidArgument)
    assert renamed.metadata == {"sn": "3"}
    assert renamed.message == "items[2].cnt: must be positive"


def test_violations_are_refused_together() -> None:
    violations = Violations()
    assert violations.check(lambda: 7) == 7
    assert violations.check(lambda: (_ for _ in ()).throw(invalid("INVALID_CODE", "a", "bad"))) is None
    violations.add(invalid("INVALID_ARGUMENT", "b", "missing"))
    with pytest.raises(DomainError) as refused:
        violations.raise_any()
    assert refused.value.reason_code == "INVALID_CODE"
    assert [v.field for v in refused.value.violations] == ["a", "b"]


def test_every_bad_fee_line_field_is_named() -> None:
    lines = [
        fee_item_pb2.FeeItem(feedetl_sn="1", med_list_codg="001201000010000", cnt="0", pric="x"),
        fee_item_pb2.FeeItem(feedetl_sn="1", med_list_codg="001201000010000", cnt="1", pric="2.5"),
        fee_item_pb2.FeeItem(feedetl_sn="1", med_list_codg="001201000010000", cnt="1", pric="2.5"),
    ]
    with pytest.raises(DomainError) as refused:
        fee_items_from_proto(lines)
    assert [v.field for v in refused.value.violations] == [
        "items[0].cnt",
        "items[0].pric",
        "items[2].feedetl_sn",
    ]
