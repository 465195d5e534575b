"""Who may call the catalogue and policy services (see :mod:`yidi_runtime.authz`).

Imports are operators' work; catalogues, policies and estimates are for every caller.
"""

from __future__ import annotations

from yidi_runtime.authz import INSTITUTION, NODE, OPERATOR, Access, allow, rules

_READ = allow(INSTITUTION, OPERATOR, NODE)

ACCESS: dict[str, Access] = rules(
    "yidi.catalogue.v1.CatalogueService",
    ImportCatalogue=allow(OPERATOR),
    LookupItems=_READ,
    ListVersions=_READ,
    DiffCatalogues=_READ,
) | rules(
    "yidi.catalogue.v1.PolicyService",
    ImportPolicy=allow(OPERATOR),
    GetPolicy=_READ,
    ListPolicyVersions=_READ,
    Estimate=_READ,
)
