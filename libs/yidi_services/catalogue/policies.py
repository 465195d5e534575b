"""Policy handlers (参保地政策): import versions, find the one in force, list them.

A policy version is the ``policy`` block of the ``calc`` case format, validated by the
core's own parser, so what is stored is exactly what the settlement core will apply.
Versions of one region and insurance type never overlap: each is in force from its
effective date to its end date, or, left open, until the next version starts.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from yidi_core.case_format import parse_policy
from yidi_core.codes import check_region, province_of
from yidi_core.dictionaries import NATIONAL
from yidi_core.errors import DomainError, invalid
from yidi_core.policy import Policy
from yidi_services.catalogue.models import PolicyVersionRecord
from yidi_services.catalogue.paging import newest_first_page


class DocumentFormat(StrEnum):
    """How a policy document is written."""

    JSON = "json"
    TOML = "toml"


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    """One stored policy version; ``document`` is its checked calc-format ``policy`` block."""

    pk: int
    insuplc_admdvs: str
    insutype: str
    effective_date: date
    end_date: date | None
    document: dict[str, Any]
    import_time: datetime

    @property
    def version_id(self) -> str:
        """``131000/310@2026-01-01#1``: region, insurance type, effective date and a sequence."""
        return f"{self.insuplc_admdvs}/{self.insutype}@{self.effective_date.isoformat()}#{self.pk}"

    @property
    def policy(self) -> Policy:
        """The core's policy value (the document was checked on import)."""
        return parse_policy(self.document)

    @classmethod
    def of(cls, record: PolicyVersionRecord) -> PolicyVersion:
        """The value of a stored row."""
        return cls(
            record.id,
            record.insuplc_admdvs,
            record.insutype,
            record.effective_date,
            record.end_date,
            json.loads(record.document),
            record.import_time,
        )


def check_insured_region(value: str, field: str = "insuplc_admdvs") -> str:
    """An insured region: any region code but the national node's, which insures nobody."""
    province_of(value, field)
    return check_region(value, field)


def check_insutype(value: str, field: str = "insutype") -> str:
    """A person's insurance type (310, 390, 340), not a fund line such as 320."""
    entry = NATIONAL.check("insutype", value, field)
    if entry.attributes.get("person") != "true":
        raise invalid(
            "INVALID_CODE", field, f"insutype {entry.code} is a fund line, not a person's insurance type"
        )
    return entry.code


def read_document(content: bytes, document_format: DocumentFormat | None) -> dict[str, Any]:
    """The policy block of a JSON or TOML document, checked by the core (``INVALID_POLICY`` names each problem)."""
    if document_format is None:
        raise invalid("INVALID_ARGUMENT", "format", "is required: JSON or TOML")
    try:
        text = content.decode("utf-8")
        raw = json.loads(text) if document_format is DocumentFormat.JSON else tomllib.loads(text)
    except (UnicodeDecodeError, ValueError) as error:
        raise invalid(
            "INVALID_POLICY", "document", f"is not valid {document_format.value.upper()}: {error}"
        ) from None
    if not isinstance(raw, dict):
        raise invalid("INVALID_POLICY", "document", "must be an object with rules")
    block = raw.get("policy", raw) if "rules" not in raw else raw
    parse_policy(block, "document")
    document = {"rules": block["rules"], "ratio_adjustments": block.get("ratio_adjustments") or {}}
    # Documents without these keys are stored, and so read, as before.
    for key in ("unfiled_factors", "unfiled_direct", "funds", "family_account"):
        if block.get(key):
            document[key] = block[key]
    return document


def _check_no_overlap(versions: list[PolicyVersion], effective_date: date, end_date: date | None) -> None:
    """An open version ends where the next begins; an explicit range must not reach another version."""
    for other in versions:
        clash = (
            other.effective_date == effective_date
            or (
                other.effective_date < effective_date
                and other.end_date is not None
                and other.end_date >= effective_date
            )
            or (
                other.effective_date > effective_date
                and end_date is not None
                and end_date >= other.effective_date
            )
        )
        if clash:
            raise invalid(
                "INVALID_POLICY",
                "effective_date",
                f"the range overlaps version {other.version_id} in force from "
                f"{other.effective_date.isoformat()} to {other.end_date or 'the next version'}",
                metadata={"version_id": other.version_id},
            )


def import_policy(
    session: Session,
    insuplc_admdvs: str,
    insutype: str,
    effective_date: date,
    end_date: date | None,
    document: dict[str, Any],
    now: datetime,
) -> PolicyVersion:
    """Store a new version unless its range overlaps another of the same region and insurance type."""
    if end_date is not None and end_date < effective_date:
        raise invalid("INVALID_ARGUMENT", "end_date", "must not be before effective_date")
    existing = [
        PolicyVersion.of(record)
        for record in session.scalars(
            select(PolicyVersionRecord).where(
                PolicyVersionRecord.insuplc_admdvs == insuplc_admdvs, PolicyVersionRecord.insutype == insutype
            )
        )
    ]
    _check_no_overlap(existing, effective_date, end_date)
    record = PolicyVersionRecord(
        insuplc_admdvs=insuplc_admdvs,
        insutype=insutype,
        effective_date=effective_date,
        end_date=end_date,
        document=json.dumps(document, ensure_ascii=False, sort_keys=True),
        import_time=now,
    )
    session.add(record)
    session.flush()
    return PolicyVersion.of(record)


_VERSIONS = PolicyVersionRecord.__table__
_IN_FORCE = (
    select(_VERSIONS.c.id, _VERSIONS.c.end_date)
    .where(
        _VERSIONS.c.insuplc_admdvs == bindparam("region"),
        _VERSIONS.c.insutype == bindparam("insutype"),
        _VERSIONS.c.effective_date <= bindparam("day"),
    )
    .order_by(_VERSIONS.c.effective_date.desc(), _VERSIONS.c.id.desc())
    .limit(1)
)
"""Built once: the insured node asks for the version in force on every settlement."""


def _found_in_force(session: Session, insuplc_admdvs: str, insutype: str, day: date) -> int | None:
    """The id of the region's own version in force on ``day``; None when none is (or a gap after an ended one)."""
    found = session.execute(_IN_FORCE, {"region": insuplc_admdvs, "insutype": insutype, "day": day}).first()
    if found is None or (found.end_date is not None and found.end_date < day):
        return None
    return int(found.id)


def no_policy(insuplc_admdvs: str, insutype: str, day: date) -> DomainError:
    """``NO_POLICY_VERSION``: neither the region nor any region above it has a policy in force."""
    return DomainError(
        "NO_POLICY_VERSION",
        f"no policy of region {insuplc_admdvs}, its city or its province for insutype {insutype} "
        f"is in force on {day.isoformat()}",
        metadata={"insuplc_admdvs": insuplc_admdvs, "insutype": insutype, "date": day.isoformat()},
    )


def most_specific_in_force(session: Session, regions: Sequence[str], insutype: str, day: date) -> int | None:
    """The id of the version in force on ``day`` of the first of ``regions`` (nearest first) that has one."""
    for region in regions:
        found = _found_in_force(session, region, insutype, day)
        if found is not None:
            return found
    return None


def stored_version(session: Session, pk: int) -> PolicyVersion:
    """The stored version ``pk`` (an id :func:`most_specific_in_force` gave)."""
    record = session.get(PolicyVersionRecord, pk)
    assert record is not None, f"policy version {pk} vanished"
    return PolicyVersion.of(record)


def list_policy_versions(
    session: Session, insuplc_admdvs: str, insutype: str, size: int, token: str
) -> tuple[list[PolicyVersion], str]:
    """An insured region's versions (of one insurance type, or all), newest first."""
    statement = select(PolicyVersionRecord).where(PolicyVersionRecord.insuplc_admdvs == insuplc_admdvs)
    if insutype:
        statement = statement.where(PolicyVersionRecord.insutype == insutype)
    records, next_token = newest_first_page(
        session, statement, PolicyVersionRecord, size, token, f"policies:{insuplc_admdvs}:{insutype}"
    )
    return [PolicyVersion.of(record) for record in records], next_token
