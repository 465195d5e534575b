"""Tables owned by the catalogue service (table names start with `catalogue_`).

Catalogue versions and policy versions are immutable once imported: a settlement records
the version ids it used, so a later import can never change what it was told.
Decimals are kept as the strings that were validated, so no database rounds them. A
version id ("110000@2026-01-01#3") is derived from region, date and primary key, never stored.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from yidi_runtime.db import service_base
from yidi_runtime.idempotency import request_model

Base = service_base("catalogue")
RequestRecord = request_model(Base)


class CatalogueVersionRecord(Base):
    """One imported catalogue version (national base or provincial overlay)."""

    __tablename__ = "catalogue_versions"
    __table_args__ = (Index("ix_catalogue_versions_region_date", "admdvs", "effective_date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    admdvs: Mapped[str] = mapped_column(String(6))
    layer: Mapped[str] = mapped_column(String(20))
    effective_date: Mapped[date] = mapped_column(Date)
    item_count: Mapped[int] = mapped_column(Integer)
    import_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    content_sha256: Mapped[str] = mapped_column(String(64))


class CatalogueItemRecord(Base):
    """One entry of a catalogue version, as validated from its CSV row."""

    __tablename__ = "catalogue_items"

    version_pk: Mapped[int] = mapped_column(ForeignKey("catalogue_versions.id"), primary_key=True)
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(12))
    chrgitm_lv: Mapped[str] = mapped_column(String(2))
    selfpay_prop: Mapped[str] = mapped_column(String(12))
    pric_uplmt_amt: Mapped[str | None] = mapped_column(String(24))
    restriction_med_types: Mapped[str] = mapped_column(String(200))
    restriction_diagnosis_prefixes: Mapped[str] = mapped_column(String(400))
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)


class PolicyVersionRecord(Base):
    """One insured-place policy version; ``document`` is its calc-format ``policy`` block as JSON."""

    __tablename__ = "catalogue_policies"
    __table_args__ = (
        Index("ix_catalogue_policies_region_insutype_date", "insuplc_admdvs", "insutype", "effective_date"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    insuplc_admdvs: Mapped[str] = mapped_column(String(6))
    insutype: Mapped[str] = mapped_column(String(6))
    effective_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    document: Mapped[str] = mapped_column(Text)
    import_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
