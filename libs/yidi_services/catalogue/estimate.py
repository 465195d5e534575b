"""Estimate (预估): what a bill would pay, from the treatment catalogue and the insured policy, changing nothing.

The treatment region's catalogue in force on the service date classifies the lines, the
insured region's policy in force then applies, and the settlement core decides every
amount — the same call pre-settlement and settlement make, so an estimate cannot disagree
with them. No accumulator is read or written: the caller says what the year has counted.

Catalogue and policy are read where they live (就医地目录、参保地政策): from this node's
tables when it hosts them, else from the node hosting them through its RPCs; either way
they reach the one settle path below as the same core values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from sqlalchemy.orm import Session

from yidi_core.accumulators import Accumulators
from yidi_core.catalogue import CatalogueEntry, FeeItem
from yidi_core.policy import Policy
from yidi_core.settlement import Person, Settlement, Visit, settle
from yidi_runtime.db import Database
from yidi_runtime.peers import PeerClient
from yidi_services.catalogue.catalogues import lookup, view_on
from yidi_services.catalogue.hosts import Hosts
from yidi_services.catalogue.item_cache import VersionItemCache

VERSION_SEPARATOR = "+"
TREATMENT_FIELD = "visit.mdtrtarea_admvs"
INSURED_FIELD = "insuplc_admdvs"


@dataclass(frozen=True, slots=True)
class EstimateCommand:
    """A checked estimate request in the core's values."""

    insuplc_admdvs: str
    mdtrtarea_admvs: str
    visit: Visit
    person: Person
    items: Sequence[FeeItem]
    accumulators: Accumulators

    @property
    def codes(self) -> list[str]:
        """The bill's distinct item codes, in bill order."""
        return list(dict.fromkeys(item.code for item in self.items))


@dataclass(frozen=True, slots=True)
class Catalogued:
    """The catalogue entries in force for a bill's codes (absent: not listed) and the versions used."""

    entries: Mapping[str, CatalogueEntry]
    version: str


@dataclass(frozen=True, slots=True)
class PolicyInForce:
    """The insured policy in force on the service date and its version id."""

    policy: Policy
    version_id: str


@dataclass(frozen=True, slots=True)
class Estimate:
    """The core's settlement and the versions it used (overlay+base, and the policy)."""

    settlement: Settlement
    catalogue_version: str
    policy_version: str


class RemoteSources(Protocol):
    """The catalogue as the node hosting it answers (see :mod:`~yidi_services.catalogue.remote`)."""

    def catalogue(self, peer: PeerClient, treatment: str, day: date, codes: Sequence[str]) -> Catalogued:
        """The treatment catalogue's entries for ``codes``, from LookupItems at ``peer``."""
        ...


class PolicySource(Protocol):
    """The insured policy in force, wherever it is hosted (:class:`~yidi_services.catalogue.policy_finder.PolicyFinder`)."""

    def in_force(self, insured: str, insutype: str, day: date) -> PolicyInForce:
        """The most specific policy in force on ``day`` for a person insured in ``insured``."""
        ...


def local_catalogue(
    session: Session, cache: VersionItemCache, treatment: str, day: date, codes: Sequence[str]
) -> Catalogued:
    """The catalogue in force in the treatment region from this node's tables (rows cached per version)."""
    view = view_on(session, treatment, day, TREATMENT_FIELD)
    found = lookup(session, cache, view, codes)
    return Catalogued(
        {code: hit.row.entry() for code, hit in found.items()},
        VERSION_SEPARATOR.join(version.version_id for version in view.versions),
    )


def settle_estimate(command: EstimateCommand, catalogued: Catalogued, policy: PolicyInForce) -> Estimate:
    """Settle the bill with the core on the given catalogue and policy."""
    settlement = settle(
        command.visit, command.person, catalogued.entries, policy.policy, command.items, command.accumulators
    )
    return Estimate(settlement, catalogued.version, policy.version_id)


class Estimator:
    """Gathers catalogue and policy wherever they are hosted, then settles on the shared path."""

    def __init__(
        self,
        database: Database,
        cache: VersionItemCache,
        hosts: Hosts,
        remote: RemoteSources,
        policies: PolicySource,
    ) -> None:
        self._database = database
        self._cache = cache
        self._hosts = hosts
        self._remote = remote
        self._policies = policies

    def estimate(self, command: EstimateCommand) -> Estimate:
        """Remote sources are asked outside any database transaction, so none waits on another node."""
        day = command.visit.service_date
        policy = self._policies.in_force(command.insuplc_admdvs, command.person.insutype, day)
        catalogue_peer = self._hosts.catalogue_peer(command.mdtrtarea_admvs, TREATMENT_FIELD)
        if catalogue_peer is not None:
            catalogued = self._remote.catalogue(catalogue_peer, command.mdtrtarea_admvs, day, command.codes)
        else:
            with self._database.unit_of_work() as uow:
                catalogued = local_catalogue(
                    uow.session, self._cache, command.mdtrtarea_admvs, day, command.codes
                )
        return settle_estimate(command, catalogued, policy)
