"""Tables owned by the registry service (table names start with `registry_`).

Institutions are keyed and listed by their national code; because the code embeds the
type letter and the region (``H`` + county code + 5 digits), a region filter is a range
of the primary key, which keeps keyset pages over hundreds of thousands of rows cheap.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from yidi_runtime.db import service_base
from yidi_runtime.idempotency import request_model
from yidi_runtime.outbox import outbox_model

Base = service_base("registry")

RequestRecord = request_model(Base)

OutboxMessage = outbox_model(Base)
"""Institution changes and suspension notices on their way to neighbouring nodes (``registry_outbox``)."""


class InstitutionRow(Base):
    """One designated institution (定点医药机构); ``version`` grows with every change."""

    __tablename__ = "registry_institutions"

    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(10))
    level: Mapped[str] = mapped_column(String(1))
    admdvs: Mapped[str] = mapped_column(String(6))
    address: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(10))
    accepts_cross_province: Mapped[bool] = mapped_column(Boolean)
    accepts_in_province: Mapped[bool] = mapped_column(Boolean)
    version: Mapped[int] = mapped_column(Integer)
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_registry_institutions_admdvs", "admdvs"),
        Index("ix_registry_institutions_status_code", "status", "code"),
    )


class OpenedServiceRow(Base):
    """A cross-region service an institution opened; ``chronic_disease`` is '' except for 门诊慢特病."""

    __tablename__ = "registry_opened_services"

    institution_code: Mapped[str] = mapped_column(
        String(12),
        ForeignKey(
            "registry_institutions.code", ondelete="CASCADE", name="fk_registry_opened_services_institution"
        ),
        primary_key=True,
    )
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    chronic_disease: Mapped[str] = mapped_column(String(6), primary_key=True)
    open_date: Mapped[date] = mapped_column(Date)
    close_date: Mapped[date | None] = mapped_column(Date, nullable=True)

    __table_args__ = (
        Index("ix_registry_opened_services_kind", "kind", "chronic_disease", "institution_code"),
    )


class SuspensionRow(Base):
    """A suspension notice (停机公告) for one institution or a whole region."""

    __tablename__ = "registry_suspensions"

    suspension_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    fixmedins_code: Mapped[str | None] = mapped_column(String(12), nullable=True)
    admdvs: Mapped[str | None] = mapped_column(String(6), nullable=True)
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(String(500))
    revoked: Mapped[bool] = mapped_column(Boolean)
    publisher: Mapped[str] = mapped_column(String(100))
    origin_admdvs: Mapped[str | None] = mapped_column(String(6), nullable=True)
    """The node that published it (who may revoke it); None for notices older than propagation."""

    __table_args__ = (
        Index("ix_registry_suspensions_fixmedins_code", "fixmedins_code"),
        Index("ix_registry_suspensions_admdvs", "admdvs"),
        Index("ix_registry_suspensions_start_time", "start_time", "suspension_id"),
    )


class PushedVersionRow(Base):
    """The newest version of an institution its parent node has acknowledged (PushInstitutions).

    Kept per record rather than as one high-water timestamp: on PostgreSQL two writers can
    commit out of their clock order, and a timestamp mark would then skip the later commit.
    """

    __tablename__ = "registry_pushed_versions"

    parent_region: Mapped[str] = mapped_column(String(6), primary_key=True)
    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
