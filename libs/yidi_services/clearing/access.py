"""Who may call the clearing service (see :mod:`yidi_runtime.authz`).

Nodes append to the journal for settlements made in their subtree and read only their own part
of it (entries whose insured or treatment region lies in their subtree) and their own
provinces' advances; advances, clearing,
statements, clawbacks and reconciliation with repair are operators' work (a node also records
the clawback of its own institution's settlement that its large-bill audit adjusted); an institution
may check its own reconciliation totals and details (national transactions 3201/3202).

A province owns its statements: its operators, calling at their province's node (which
relays the call with their vouch), list, read, confirm and dispute them at the national
node — only their own region's (:func:`own_province`, :func:`ensure_own_statement`);
national operators see and act on all. They read their own province's advance proposals
the same way; proposing and applying them is national operators' work.
"""

from __future__ import annotations

from yidi_core.codes import NATIONAL_REGION
from yidi_core.errors import DomainError
from yidi_runtime.authz import INSTITUTION, NODE, OPERATOR, Access, allow, rules
from yidi_runtime.config import region_contains
from yidi_runtime.identity import Principal

_OPERATOR = allow(OPERATOR)
_PROVINCE_OWNED = allow(OPERATOR, operators_below=True)
_INSTITUTION_CHECK = allow(INSTITUTION, OPERATOR, NODE, own=("fixmedins_code",), origin=("fixmedins_code",))

ACCESS: dict[str, Access] = rules(
    "yidi.clearing.v1.ClearingService",
    AppendJournalEntries=allow(
        NODE, origin=("source_admdvs", "entries.mdtrtarea_admvs", "entries.fixmedins_code")
    ),
    ListJournalEntries=allow(OPERATOR, NODE),
    SetAdvance=_OPERATOR,
    TopUpAdvance=_OPERATOR,
    GetAdvanceStatus=allow(OPERATOR, NODE, origin=("admdvs",)),
    ProposeAdvances=_OPERATOR,
    GetAdvanceProposal=_PROVINCE_OWNED,
    ListAdvanceProposals=_PROVINCE_OWNED,
    ApplyAdvanceProposal=_OPERATOR,
    ListAlerts=_OPERATOR,
    RunClearing=_OPERATOR,
    GetClearingRun=_OPERATOR,
    ListStatements=_PROVINCE_OWNED,
    GetStatement=_PROVINCE_OWNED,
    ConfirmStatement=_PROVINCE_OWNED,
    DisputeStatement=_PROVINCE_OWNED,
    RecordTransfer=_OPERATOR,
    RecordClawback=allow(OPERATOR, NODE, origin=("fixmedins_code",)),
    GetClearingCalendar=allow(OPERATOR, NODE, INSTITUTION),
    GetLedger=_OPERATOR,
    ListLedgerEntries=_OPERATOR,
    Reconcile=_OPERATOR,
    GetReconciliationRun=_OPERATOR,
    ListDiscrepancies=_OPERATOR,
    ListReconciliationLines=_OPERATOR,
    RepairDiscrepancies=_OPERATOR,
    CheckInstitutionTotals=_INSTITUTION_CHECK,
    CheckInstitutionDetails=_INSTITUTION_CHECK,
)


def _denied(principal: Principal, what: str) -> DomainError:
    return DomainError(
        "PERMISSION_DENIED_REGION",
        f"{principal.subject} may act only on its own region's records, not on {what}",
        metadata={"caller": principal.subject},
    )


def own_province(principal: Principal, admdvs: str) -> str:
    """The province filter a listing (or reading) by ``principal`` gets: its own region unless it holds them all.

    An empty ``admdvs`` asks for every statement the principal may see; another region's is refused.
    """
    if admdvs and not region_contains(principal.region, admdvs):
        raise _denied(principal, f"those of {admdvs}")
    if admdvs or principal.region == NATIONAL_REGION:
        return admdvs
    return principal.region


def ensure_own_statement(principal: Principal, statement_id: str) -> None:
    """Refuse a statement outside ``principal``'s region, whether or not it exists (the id names its province)."""
    if not region_contains(principal.region, statement_id.rpartition("/")[2]):
        raise _denied(principal, f"statement {statement_id[:32]!r}")
