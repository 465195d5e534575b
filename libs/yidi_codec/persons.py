"""The person an insured place settles (``yidi.type.v1.PersonSnapshot``) → the core's :class:`~yidi_core.settlement.Person`."""

from __future__ import annotations

from yidi.type.v1 import person_pb2
from yidi_codec.types import filing_category_from_proto
from yidi_core.money import from_fen
from yidi_core.settlement import Person


def person_from_snapshot(snapshot: person_pb2.PersonSnapshot, use_account: bool, balance_fen: int) -> Person:
    """The person as filing sees them; the account is used only if the snapshot says they have one."""
    return Person(
        insutype=snapshot.insutype,
        psn_type=snapshot.psn_type,
        filing_category=filing_category_from_proto(snapshot.filing_category),
        account_balance=from_fen(balance_fen),
        use_account=use_account and snapshot.has_personal_account,
    )
