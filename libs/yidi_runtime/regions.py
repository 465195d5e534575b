"""Region codes as a tree (province ``PP0000`` ⊃ city ``PPCC00`` ⊃ county), for every service.

Services scope their data and permissions by this tree and filter "everything below a
region" as a key range an ordinary B-tree index serves on every database.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_

from yidi_core.codes import NATIONAL_REGION
from yidi_core.errors import DomainError
from yidi_runtime.config import region_contains


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


def ancestors(admdvs: str) -> tuple[str, ...]:
    """``admdvs`` and every region above it up to the national root, nearest first."""
    return tuple(dict.fromkeys([admdvs, admdvs[:4] + "00", admdvs[:2] + "0000", NATIONAL_REGION]))


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string above every ``prefix`` followed by digits (None: no bound).

    The prefix may start with a letter (an institution code's type, ``H`` + region digits).
    """
    stripped = prefix.rstrip("9")
    if not stripped:
        return None
    return stripped[:-1] + chr(ord(stripped[-1]) + 1)


def below(column: Any, admdvs: str) -> ColumnElement[bool]:
    """``column`` (a region code or a key starting with one) lies in the subtree of ``admdvs``."""
    prefix = region_prefix(admdvs)
    upper = prefix_upper_bound(prefix)
    lower = column >= prefix
    return lower if upper is None else and_(lower, column < upper)


def ensure_within(node_region: str, admdvs: str, what: str) -> None:
    """Refuse a change to data outside the node's own region (PERMISSION_DENIED_REGION)."""
    if not region_contains(node_region, admdvs):
        raise DomainError(
            "PERMISSION_DENIED_REGION",
            f"{what} lies in region {admdvs}, outside this node's region {node_region}",
            metadata={"admdvs": admdvs, "node_region": node_region},
        )
