"""A side's record as a discrepancy keeps it: a versioned JSON document, not the wire's encoding.

A snapshot is what one side stated about a settlement when the run compared it (a
``SettlementRecord``), kept so that an operator sees the sides side by side and a repair
replays exactly what the treatment node recorded. Stored as a document the database can
show and query, it outlives changes to the message: ``v`` says how it is laid out, every
other key is the record's field of that name — money in integer fen, ``record_time`` an
RFC 3339 UTC string (nanoseconds kept; null when unset), ``hold_state`` a name ("" when
unset). This module is the one codec: the tables, the answers and the migration that
turned the old encodings into documents all go through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from yidi.settlement.v1 import insured_settlement_service_pb2 as settlement_api
from yidi.settlement.v1.insured_settlement_service_pb2 import SettlementRecord

VERSION = 1
_TEXT = (
    "msgid",
    "setl_id",
    "insuplc_admdvs",
    "mdtrtarea_admvs",
    "fixmedins_code",
    "psn_no",
    "insutype",
    "clr_type",
    "mdtrt_id",
    "reverses_msgid",
)
_FEN = ("medfee_sumamt_fen", "fund_pay_sumamt_fen", "acct_pay_fen", "psn_cash_pay_fen")
_HOLD_STATES = {
    settlement_api.HOLD_STATE_UNSPECIFIED: "",
    settlement_api.HOLD_STATE_HELD: "held",
    settlement_api.HOLD_STATE_CONFIRMED: "confirmed",
    settlement_api.HOLD_STATE_VOIDED: "voided",
}
_HOLD_STATES_BY_NAME = {name: number for number, name in _HOLD_STATES.items()}


class UnknownSnapshot(ValueError):
    """A document of a version (or shape) this code does not read."""


def document(record: SettlementRecord) -> dict[str, Any]:
    """The record as a snapshot document (a JSON object)."""
    return {
        "v": VERSION,
        **{name: getattr(record, name) for name in _TEXT},
        **{name: getattr(record, name) for name in _FEN},
        "record_time": record.record_time.ToJsonString() if record.HasField("record_time") else None,
        "reversed": record.reversed,
        "hold_state": _HOLD_STATES[record.hold_state],
    }


def record(snapshot: Mapping[str, Any]) -> SettlementRecord:
    """The record a snapshot document holds; :class:`UnknownSnapshot` for one this code cannot read."""
    if snapshot.get("v") != VERSION:
        raise UnknownSnapshot(
            f"a reconciliation snapshot of version {snapshot.get('v')!r}; this code reads {VERSION}"
        )
    try:
        decoded = SettlementRecord(
            **{name: snapshot[name] for name in (*_TEXT, *_FEN)},
            reversed=snapshot["reversed"],
            hold_state=_HOLD_STATES_BY_NAME[snapshot["hold_state"]],
        )
        if snapshot["record_time"] is not None:
            moment = Timestamp()
            moment.FromJsonString(snapshot["record_time"])
            decoded.record_time.CopyFrom(moment)
    except (KeyError, TypeError, ValueError) as error:
        raise UnknownSnapshot(
            f"a reconciliation snapshot of version {VERSION} that does not read: {error!r}"
        ) from error
    return decoded
