"""Who may call the clearing service (see :mod:`yidi_runtime.authz`).

Nodes append to the journal for settlements made in their subtree and read only their own part
of it (entries whose insured or treatment region lies in their subtree) and their own
provinces' advances; advances, clearing,
statements, clawbacks and reconciliation with repair are operators' work; an institution
may check its own reconciliation totals and details (national transactions 3201/3202).
"""

from __future__ import annotations

from yidi_runtime.authz import INSTITUTION, NODE, OPERATOR, Access, allow, rules

_OPERATOR = allow(OPERATOR)
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
    ListAlerts=_OPERATOR,
    RunClearing=_OPERATOR,
    GetClearingRun=_OPERATOR,
    ListStatements=_OPERATOR,
    GetStatement=_OPERATOR,
    ConfirmStatement=_OPERATOR,
    RecordTransfer=_OPERATOR,
    RecordClawback=_OPERATOR,
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
