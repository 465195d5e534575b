"""The person an insured place settles (``yidi.type.v1.PersonSnapshot``) → the core's :class:`~yidi_core.settlement.Person`."""

from __future__ import annotations

from yidi.type.v1 import person_pb2
from yidi_codec.types import filing_category_from_proto
from yidi_core.money import from_fen
from yidi_core.settlement import Person


def person_from_snapshot(snapshot: person_pb2.PersonSnapshot, use_account: bool, balance_fen: int) -> Person:
    """The person as filing sees them; the account is used only if the snapshot says they have one.

    The national settlement request has one account flag (``acct_used_flag``): a patient who chose the
    account also chose the registered family member's (门诊共济), when the snapshot names a balance.
    """
    return Person(
        insutype=snapshot.insutype,
        psn_type=snapshot.psn_type,
        filing_category=filing_category_from_proto(snapshot.filing_category),
        account_balance=from_fen(balance_fen),
        use_account=use_account and snapshot.has_personal_account,
        low_income=snapshot.low_income,
        civil_servant=snapshot.civil_servant,
        assistance_category=snapshot.assistance_category.strip() or None,
        family_account_balance=from_fen(max(0, snapshot.family_account_balance_fen)),
        use_family_account=use_account and snapshot.family_account_balance_fen > 0,
    )
