"""Who may call the filing service (see :mod:`yidi_runtime.authz`), and what the insured node checks besides.

The insured centre's operators import persons, set rules, review filings and decide the
rechecks a rules change raises (answered at the insured place's node, like the filings). Applications,
reads, cancellations and eligibility questions are relayed to the insured place's node
(:mod:`~yidi_services.filing.routing`), which authorizes the original principal:

- an **operator** acts on the insured persons of its own region (the interceptor already keeps
  it to nodes within that region; :func:`ensure_operator_of` says it for the record's region).
  The national channels (mini-program, app) are national operators, ``operator/000000/<channel>``,
  and may file for anyone;
- an **institution** files, changes and checks eligibility only for care at itself
  (:func:`ensure_care_here`): through the hospital channel, for a treatment region holding it,
  and among the designated institutions when the filing names any. It reads, changes and
  cancels only the filings it entered (:func:`~yidi_services.filing.filings.load_row`);
- a **node** only relays these calls: its own vouch names it, and no node may file. It asks
  eligibility for care in its own subtree (the insured side of a settlement asks its own
  node's filing service in process).

Every refusal is PERMISSION_DENIED_REGION or PERMISSION_DENIED_ROLE, naming the field.
"""

from __future__ import annotations

from collections.abc import Sequence

from yidi_core.codes import check_region
from yidi_core.errors import DomainError
from yidi_runtime import identity
from yidi_runtime.authz import INSTITUTION, NODE, OPERATOR, Access, allow, rules
from yidi_runtime.config import region_contains
from yidi_runtime.identity import CallerRole, Principal

_OPERATOR = allow(OPERATOR)
_FILE = allow(INSTITUTION, OPERATOR)
HOSPITAL_CHANNEL = "hospital"
"""The channel an institution files through (a self-service channel is the person's own, and may be approved at once)."""

ACCESS: dict[str, Access] = rules(
    "yidi.filing.v1.FilingService",
    ImportInsuredPersons=_OPERATOR,
    UpdateInsuredStatus=_OPERATOR,
    SetFilingRules=_OPERATOR,
    ReviewFiling=_OPERATOR,
    ListPendingReviews=_OPERATOR,
    ListFilingRechecks=_OPERATOR,
    DecideFilingRecheck=_OPERATOR,
    GetInsuredPerson=allow(OPERATOR, NODE),
    ListInsuredPersons=_OPERATOR,
    CreateFiling=_FILE,
    ChangeFiling=_FILE,
    CancelFiling=_FILE,
    CompleteMaterials=_FILE,
    GetFiling=_FILE,
    ListFilings=_FILE,
    GetFilingRules=_FILE,
    CheckEligibility=allow(
        INSTITUTION, NODE, OPERATOR, own=("fixmedins_code",), origin=("treatment_admdvs", "fixmedins_code")
    ),
)


def _denied(reason: str, message: str, principal: Principal, **metadata: str) -> DomainError:
    return DomainError(reason, message, metadata={"caller": principal.subject, **metadata})


def ensure_operator_of(insured_region: str) -> None:
    """PERMISSION_DENIED_REGION unless an operator calling works for ``insured_region`` (others pass)."""
    principal = identity.acting()
    if principal.role is CallerRole.OPERATOR and not region_contains(principal.region, insured_region):
        raise _denied(
            "PERMISSION_DENIED_REGION",
            f"an operator of region {principal.region} acts only on persons insured there, "
            f"not in {insured_region}",
            principal,
            insuplc_admdvs=insured_region,
        )


def ensure_care_here(treatment_admdvs: str, designated: Sequence[str] = (), channel: str = "") -> None:
    """An institution calling acts only for care at itself (others pass).

    ``treatment_admdvs`` (when given) must hold the institution, ``designated`` (when any)
    must name it, and ``channel`` (when given) must be the hospital channel.
    """
    principal = identity.acting()
    if principal.role is not CallerRole.INSTITUTION:
        return
    if channel and channel != HOSPITAL_CHANNEL:
        raise _denied(
            "PERMISSION_DENIED_ROLE",
            f"institution {principal.name} files through the hospital channel, not {channel}",
            principal,
            field="channel",
        )
    if treatment_admdvs:
        treatment = check_region(treatment_admdvs, "treatment_admdvs")
        if not region_contains(treatment, principal.region):
            raise _denied(
                "PERMISSION_DENIED_REGION",
                f"institution {principal.name} acts only for care at itself, not in treatment region {treatment}",
                principal,
                field="treatment_admdvs",
            )
    if designated and principal.name not in (code.strip() for code in designated):
        raise _denied(
            "PERMISSION_DENIED_REGION",
            f"institution {principal.name} acts only for care at itself, but is not among the "
            "designated institutions",
            principal,
            field="designated_institutions",
        )
