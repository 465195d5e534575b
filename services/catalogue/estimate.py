"""Estimate (预估): what a bill would pay, from this node's catalogue and policy, changing nothing.

The treatment region's catalogue in force on the service date classifies the lines, the
insured region's policy in force then applies, and the settlement core decides every
amount — the same call pre-settlement and settlement make, so an estimate cannot disagree
with them. No accumulator is read or written: the caller says what the year has counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from yidi_core.accumulators import Accumulators
from yidi_core.catalogue import FeeItem
from yidi_core.settlement import Person, Settlement, Visit, settle
from yidi_services.catalogue.catalogues import lookup, view_on
from yidi_services.catalogue.item_cache import VersionItemCache
from yidi_services.catalogue.policies import policy_in_force

VERSION_SEPARATOR = "+"


@dataclass(frozen=True, slots=True)
class EstimateCommand:
    """A checked estimate request in the core's values."""

    insuplc_admdvs: str
    mdtrtarea_admvs: str
    visit: Visit
    person: Person
    items: Sequence[FeeItem]
    accumulators: Accumulators


@dataclass(frozen=True, slots=True)
class Estimate:
    """The core's settlement and the versions it used (overlay+base, and the policy)."""

    settlement: Settlement
    catalogue_version: str
    policy_version: str


def estimate(session: Session, cache: VersionItemCache, command: EstimateCommand) -> Estimate:
    """Settle the bill with the core on the catalogue and policy in force on the service date."""
    day = command.visit.service_date
    view = view_on(session, command.mdtrtarea_admvs, day, "visit.mdtrtarea_admvs")
    found = lookup(session, cache, view, list(dict.fromkeys(item.code for item in command.items)))
    policy = policy_in_force(session, command.insuplc_admdvs, command.person.insutype, day)
    settlement = settle(
        command.visit,
        command.person,
        {code: hit.row.entry() for code, hit in found.items()},
        policy.policy,
        command.items,
        command.accumulators,
    )
    return Estimate(
        settlement,
        VERSION_SEPARATOR.join(version.version_id for version in view.versions),
        policy.version_id,
    )
