"""Who may call the settlement services (see :mod:`yidi_runtime.authz`).

The HIS-facing service is the institutions' own: each acts only as itself, and its envelope
must name it (an institution's list is its own records, whatever filter it sends). Operators
may read.

The node-to-node service is checked against the principal each call acts for (the vouch it
carries): a node's request must start in its subtree (its route's origin, the treatment place
and institution), and the seal of an application's messages must be the node that applied
it (checked by the handler against the stored application). Only this node's ancestors read
its settlement records (the national reconciliation); a person's accumulators and account are
operators' business, within their region at every hop. A bill (GetBill) is authorized by the
treatment node that keeps it, against the record (:mod:`~yidi_services.settlement.treatment.whole_bills`);
an operator asks at their own node, which fetches it as itself. Reimbursing a self-pay bill
is the insured region's operators' work. The large-bill audit queue is the treatment node's
operators' (an operator acts only at nodes within their region); its adjustments reach the insured
node as the treatment node's sealed messages, read there by its operators.
"""

from __future__ import annotations

from yidi_runtime.authz import INSTITUTION, NODE, OPERATOR, Access, allow, rules

_HIS = allow(INSTITUTION, own=("envelope.fixmedins_code",))
_HIS_READ = allow(INSTITUTION, OPERATOR, own=("envelope.fixmedins_code",))
_ORIGIN = ("route.origin_admdvs",)

ACCESS: dict[str, Access] = rules(
    "yidi.settlement.v1.SettlementService",
    VerifyPerson=_HIS,
    RegisterVisit=_HIS,
    DischargeVisit=_HIS,
    CancelVisit=_HIS,
    UploadFeeItems=_HIS,
    CancelFeeItems=_HIS,
    PreSettle=_HIS,
    Settle=_HIS,
    ReverseSettlement=_HIS,
    Correct=_HIS,
    UploadSelfPayBill=_HIS,
    GetSettlement=_HIS_READ,
    ListSettlements=_HIS_READ,
    GetSelfPayBill=_HIS_READ,
    GetDirectSettlementReport=_HIS_READ,
) | rules(
    "yidi.settlement.v1.InsuredSettlementService",
    ResolvePerson=allow(NODE, origin=(*_ORIGIN, "treatment_admdvs", "fixmedins_code")),
    ApplySettlement=allow(NODE, origin=(*_ORIGIN, "facts.fixmedins_code", "facts.mdtrtarea_admvs")),
    ConfirmSettlement=allow(NODE, origin=_ORIGIN),
    ConfirmSettlements=allow(NODE, origin=_ORIGIN),
    RevertSettlement=allow(NODE, origin=_ORIGIN),
    CreditAccount=allow(OPERATOR),
    ListSettlementRecords=allow(NODE, OPERATOR, origin=_ORIGIN, from_above=True),
    GetAccumulators=allow(OPERATOR),
    FenceSettlement=allow(NODE, origin=_ORIGIN),
    ResolveHold=allow(NODE, OPERATOR, origin=_ORIGIN, from_above=True),
    GetBill=allow(INSTITUTION, OPERATOR, NODE, origin=_ORIGIN),
    ReimburseSelfPayBill=allow(OPERATOR),
)
ACCESS |= rules(
    "yidi.settlement.v1.AuditCaseService",
    ListAuditCases=allow(OPERATOR),
    GetAuditCase=allow(OPERATOR),
    DecideAuditCase=allow(OPERATOR),
    RecordAuditAdjustment=allow(NODE, origin=_ORIGIN),
    ListAuditAdjustments=allow(OPERATOR),
)
