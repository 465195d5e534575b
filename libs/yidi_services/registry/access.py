"""Who may call the institution registry (see :mod:`yidi_runtime.authz`).

Registering, updating, importing and suspending institutions is operators' work; anyone
may read the register (it is public information); a child node syncs its own records up; a
neighbouring node passes suspension notices on (the handler checks which it may pass on).
"""

from __future__ import annotations

from yidi_runtime.authz import INSTITUTION, NODE, OPERATOR, Access, allow, rules

_OPERATOR = allow(OPERATOR)
_READ = allow(INSTITUTION, OPERATOR, NODE)

ACCESS: dict[str, Access] = rules(
    "yidi.registry.v1.InstitutionRegistryService",
    RegisterInstitution=_OPERATOR,
    UpdateInstitution=_OPERATOR,
    ImportInstitutions=_OPERATOR,
    PublishSuspension=_OPERATOR,
    RevokeSuspension=_OPERATOR,
    PushInstitutions=_OPERATOR,
    GetInstitution=_READ,
    ListInstitutions=_READ,
    ListSuspensions=_READ,
    CoverageReport=_READ,
    CheckInstitution=allow(INSTITUTION, OPERATOR, NODE, own=("fixmedins_code",)),
    SyncInstitutions=allow(NODE, origin=("source_admdvs", "institutions.fixmedins_code")),
    SyncSuspension=allow(NODE, origin=("source_admdvs",)),
)
