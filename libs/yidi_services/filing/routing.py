"""Where an application or an eligibility question is answered: the insured-place node.

Tree routing between nodes is not built yet (the settlement issue brings it), so a node
answers for the insured regions of its own subtree and says plainly that any other insured
region is unreachable from here, with nothing applied.
"""

from __future__ import annotations

from yidi_core.errors import DomainError
from yidi_runtime.config import region_contains


def ensure_hosted(node_region: str, insured_region: str) -> None:
    """Refuse with INSURED_REGION_UNREACHABLE when ``insured_region`` is hosted by another node."""
    if not region_contains(node_region, insured_region):
        raise DomainError(
            "INSURED_REGION_UNREACHABLE",
            f"insured region {insured_region} is hosted by another node and routing to it is not available "
            f"from this node ({node_region}); nothing was applied",
            metadata={"insuplc_admdvs": insured_region, "node_region": node_region},
        )
