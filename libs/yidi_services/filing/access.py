"""Who may call the filing service (see :mod:`yidi_runtime.authz`).

The insured centre's operators import persons, set rules and review filings; hospitals file
for their patients (retroactive filing at the window) and nodes forward filings and
eligibility checks toward the insured place.
"""

from __future__ import annotations

from yidi_runtime.authz import INSTITUTION, NODE, OPERATOR, Access, allow, rules

_OPERATOR = allow(OPERATOR)
_FILE = allow(INSTITUTION, OPERATOR, NODE)

ACCESS: dict[str, Access] = rules(
    "yidi.filing.v1.FilingService",
    ImportInsuredPersons=_OPERATOR,
    UpdateInsuredStatus=_OPERATOR,
    SetFilingRules=_OPERATOR,
    ReviewFiling=_OPERATOR,
    ListPendingReviews=_OPERATOR,
    GetInsuredPerson=allow(OPERATOR, NODE),
    ListInsuredPersons=_OPERATOR,
    CreateFiling=_FILE,
    ChangeFiling=_FILE,
    CancelFiling=_FILE,
    CompleteMaterials=_FILE,
    GetFiling=_FILE,
    ListFilings=_FILE,
    GetFilingRules=_FILE,
    CheckEligibility=allow(NODE, OPERATOR, origin=("treatment_admdvs", "fixmedins_code")),
)
