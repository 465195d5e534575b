"""Region codes as a tree: a province ``PP0000`` holds cities ``PPCC00`` which hold counties.

The registry filters, scopes suspensions and rolls up coverage along this tree; the
national code 000000 is the root and covers everything.
"""

from __future__ import annotations

from yidi_core.codes import NATIONAL_REGION
from yidi_core.errors import DomainError


def region_prefix(admdvs: str) -> str:
    """The digits every code below ``admdvs`` starts with ('' for the national root)."""
    if admdvs == NATIONAL_REGION:
        return ""
    if admdvs.endswith("0000"):
        return admdvs[:2]
    if admdvs.endswith("00"):
        return admdvs[:4]
    return admdvs


def region_level(admdvs: str) -> str:
    """``national``, ``province``, ``city`` or ``county``."""
    if admdvs == NATIONAL_REGION:
        return "national"
    if admdvs.endswith("0000"):
        return "province"
    return "city" if admdvs.endswith("00") else "county"


def within(scope: str, admdvs: str) -> bool:
    """Whether region ``admdvs`` lies in ``scope`` (a region lies within itself)."""
    return admdvs.startswith(region_prefix(scope))


def ancestors(admdvs: str) -> tuple[str, ...]:
    """``admdvs`` and every region above it up to the national root, nearest first."""
    chain = [admdvs, admdvs[:4] + "00", admdvs[:2] + "0000", NATIONAL_REGION]
    return tuple(dict.fromkeys(chain))


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest digit string above every string starting with ``prefix`` (None: no bound).

    Turns "starts with" into a range an ordinary B-tree index serves on every database.
    """
    stripped = prefix.rstrip("9")
    if not stripped:
        return None
    return stripped[:-1] + str(int(stripped[-1]) + 1)


def ensure_within(node_region: str, admdvs: str, what: str) -> None:
    """Refuse a change to data outside the node's own region (PERMISSION_DENIED_REGION)."""
    if not within(node_region, admdvs):
        raise DomainError(
            "PERMISSION_DENIED_REGION",
            f"{what} lies in region {admdvs}, outside this node's region {node_region}",
            metadata={"admdvs": admdvs, "node_region": node_region},
        )
