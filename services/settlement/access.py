"""Who may call the settlement services (see :mod:`yidi_runtime.authz`).

The HIS-facing service is the institutions' own: each acts only as the institution of its
envelope. Operators may read. The insured-side service is for nodes only; a node's request
must start in its subtree (its route's origin, the treatment place and institution).
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
    ListSettlements=allow(INSTITUTION, OPERATOR, own=("envelope.fixmedins_code", "fixmedins_code")),
    GetSelfPayBill=_HIS_READ,
) | rules(
    "yidi.settlement.v1.InsuredSettlementService",
    ResolvePerson=allow(NODE, origin=(*_ORIGIN, "treatment_admdvs", "fixmedins_code")),
    ApplySettlement=allow(NODE, origin=(*_ORIGIN, "facts.fixmedins_code", "facts.mdtrtarea_admvs")),
    ConfirmSettlement=allow(NODE, origin=_ORIGIN),
    ConfirmSettlements=allow(NODE, origin=_ORIGIN),
    RevertSettlement=allow(NODE, origin=_ORIGIN),
    CreditAccount=allow(NODE, OPERATOR, origin=_ORIGIN),
    ListSettlementRecords=allow(NODE, OPERATOR, origin=_ORIGIN),
    GetAccumulators=allow(NODE, OPERATOR, origin=_ORIGIN),
)
