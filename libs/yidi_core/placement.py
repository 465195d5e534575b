"""Where a settlement belongs: its payment location, clearing type, national journal and audit.

These are policy, not plumbing: every node must place a settlement the same way, or the
national journal, the monthly clearing and the treatment place's audit cases disagree about
which settlements they hold. The codes are the ``Settlement`` message's (``pay_loc``,
``clr_type``); ``docs/integration.md`` states the rules for institutions.
"""

from __future__ import annotations

from yidi_core.codes import province_of

IN_PROVINCE = "3"
"""``pay_loc`` 省内异地: insured in another city of the treatment province."""
CROSS_PROVINCE = "4"
"""``pay_loc`` 跨省异地: insured in another province; the national node journals and clears it."""

OUTPATIENT = "11"
"""``clr_type`` 门诊."""
INPATIENT = "21"
"""``clr_type`` 住院."""
PHARMACY = "41"
"""``clr_type`` 药店购药, and the ``med_type`` (定点药店购药) that clears as it."""

AUDIT_THRESHOLD_FEN = 3_000_000
"""The national default: a cross-province inpatient bill of 30,000 yuan or more is audited by the
treatment place (大额费用协查); a node may set its own (``settlement.audit_threshold_fen``)."""


def is_inpatient(med_type: str) -> bool:
    """Inpatient medical types (21 general, 22 trauma, 24 emergency to inpatient, local 2x extensions).

    An inpatient stay is discharged before it is settled and clears as inpatient care.
    """
    return med_type.startswith("2")


def clr_type(med_type: str) -> str:
    """The clearing type of a visit's medical type: inpatient, pharmacy, else outpatient.

    Clearing and institution reconciliation (3201) group settlements by it.
    """
    if is_inpatient(med_type):
        return INPATIENT
    return PHARMACY if med_type == PHARMACY else OUTPATIENT


def pay_loc(insuplc_admdvs: str, mdtrtarea_admvs: str) -> str:
    """The payment location: cross-province when the insured and treatment provinces differ.

    Raises INVALID_CODE for a malformed region or the national node's, which has no province.
    """
    return CROSS_PROVINCE if province_of(insuplc_admdvs) != province_of(mdtrtarea_admvs) else IN_PROVINCE


def journaled_nationally(location: str) -> bool:
    """Whether a settlement (or its reversal) of payment location ``location`` goes to the national journal.

    Only cross-province settlements are cleared between provinces; in-province ones stay with the province.
    """
    return location == CROSS_PROVINCE


def audit_flagged(
    clearing: str, location: str, medfee_sumamt_fen: int, threshold_fen: int = AUDIT_THRESHOLD_FEN
) -> bool:
    """Whether a settlement opens a treatment-place audit case (大额协查): a cross-province
    inpatient bill of at least ``threshold_fen``. It never changes the settlement."""
    return clearing == INPATIENT and location == CROSS_PROVINCE and medfee_sumamt_fen >= threshold_fen
