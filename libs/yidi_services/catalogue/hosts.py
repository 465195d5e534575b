"""Which node hosts what the catalogue service reads: policies at the insured place, catalogues at the treatment province.

A policy (参保地政策) is hosted where tree routing takes its insured region: this node when
the region lies in its subtree and no child owns it, else the next node toward it. A
catalogue (就医地目录) is hosted by its treatment province's node. A request for data
hosted elsewhere goes one hop toward it and that node decides again, as a settlement
does, so a node only ever knows its parent and children.

A region without a policy of its own is settled with its city's, else its province's
(:meth:`Hosts.policy_places`); a treatment region without a catalogue overlay of its own
uses its city's, else its province's, all of them held at the province's node.

A standalone node (no parent, no children: the embedded default, the demo) is the whole
tree, so it answers from whatever was imported into it.
"""

from __future__ import annotations

from yidi_core.codes import NATIONAL_REGION, check_region, province_of
from yidi_core.errors import DomainError
from yidi_runtime.peers import PeerClient
from yidi_runtime.regions import ancestors
from yidi_runtime.routing import Router


def up_the_tree(region: str) -> tuple[str, ...]:
    """Where a region's policy or catalogue overlay may come from, nearest first: county, city, province."""
    return tuple(code for code in ancestors(region) if code != NATIONAL_REGION)


class Hosts:
    """Route decisions for policies and catalogues over the node's router."""

    def __init__(self, router: Router) -> None:
        self._router = router
        settings = router.settings
        self._region = settings.region
        self._standalone = settings.parent is None and not settings.children

    def policy_peer(self, insured: str, field: str) -> PeerClient | None:
        """The next node toward the insured region's policies; None when this node hosts them."""
        if self._standalone:
            return None
        return self._router.next_hop(insured, field)

    def policy_places(
        self, insured: str, field: str
    ) -> tuple[tuple[str, ...], tuple[str, PeerClient] | None]:
        """The regions of :func:`up_the_tree` whose policies this node hosts, nearest first, and the first
        one it does not host with the next node toward it (None when every one is here).

        Hosting only moves up the tree (a node hosts a region's ancestors, or its parent does), so
        the node asked for that region walks the rest of the way itself.
        """
        here: list[str] = []
        for region in up_the_tree(check_region(insured, field)):
            peer = self.policy_peer(region, field)
            if peer is not None:
                return tuple(here), (region, peer)
            here.append(region)
        return tuple(here), None

    def ensure_hosted_here(self, peer: PeerClient | None, region: str, what: str) -> None:
        """Refuse an import of data this node does not host (``peer``: the next node toward its host),
        which no lookup would ever read here (PERMISSION_DENIED_REGION)."""
        if peer is not None:
            raise DomainError(
                "PERMISSION_DENIED_REGION",
                f"{what} of region {region} is not held at node {self._region}: import it at the node "
                f"hosting it, reached through node {peer.peer.region}",
                metadata={"admdvs": region, "node_region": self._region},
            )

    def catalogue_peer(self, treatment: str, field: str) -> PeerClient | None:
        """The next node toward the treatment province's catalogue; None when this node hosts it.

        The national base alone (region 000000) is read where it is asked for.
        """
        region = check_region(treatment, field)
        if self._standalone or region == NATIONAL_REGION:
            return None
        province = province_of(region, field)
        if province == self._region:
            return None
        return self._router.next_hop(province, field)
