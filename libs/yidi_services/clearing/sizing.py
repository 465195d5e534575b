"""Advance sizing (预付金测算): the national node proposes each province's advance, an operator applies it.

The basis is a province's *outflow* in the year before: the payable (its insured's fund
payments treated elsewhere) on its clearing statements of that year's cleared months. The
statements, not the journal, are the source: they are what the province confirmed and paid —
late deliveries and reversals carried in as adjustments, clawbacks (追回) already taken off —
whereas the journal still holds entries no clearing has counted. A month counts once its
clearing run succeeded; a province without a statement that month paid nothing in it. The
rule (configuration ``[clearing]``): ``advance_months`` months of the monthly average
(outflow ÷ months counted), rounded half up to the fen, and never below ``advance_minimum`` —
which is also what a province with no cleared history is proposed.

Proposing stores one proposal per province with its basis; proposing again recomputes the
proposals not yet applied (more months may have been cleared since). Applying sets the
year's advance through :func:`~.advances.set_advance` — the ledger receives the difference —
and marks the proposal applied, once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yidi_core.errors import DomainError, invalid
from yidi_core.money import format_money, from_fen, to_fen
from yidi_runtime.config import NodeSettings
from yidi_runtime.paging import decode_token, encode_token
from yidi_runtime.wire import as_utc
from yidi_services.clearing import advances
from yidi_services.clearing.jobs import RunState
from yidi_services.clearing.models import (
    AdvanceProposalRecord,
    AdvanceRecord,
    ClearingRunRecord,
    StatementRecord,
)


@dataclass(frozen=True, slots=True)
class Rule:
    """How many months of average outflow an advance covers, and the least advance proposed."""

    months: Decimal
    minimum_fen: int

    @classmethod
    def of(cls, settings: NodeSettings) -> Rule:
        """The node's configured rule (validated by the configuration loader)."""
        return cls(settings.clearing_advance_months, to_fen(settings.clearing_advance_minimum))

    def proposed_fen(self, outflow_fen: int, months_counted: int) -> int:
        """``months`` × outflow ÷ months counted, half up to the fen, at least the minimum."""
        if months_counted == 0:
            return self.minimum_fen
        sized = (Decimal(outflow_fen) * self.months / months_counted).quantize(Decimal(1), ROUND_HALF_UP)
        return max(int(sized), self.minimum_fen)


@dataclass(frozen=True, slots=True)
class Proposal:
    """A province's proposed advance for a year, its basis, and how it was applied (if it was)."""

    admdvs: str
    year: int
    periods: tuple[str, ...]
    outflow_fen: int
    rule_months: Decimal
    minimum_fen: int
    proposed_fen: int
    current_advance_fen: int
    propose_time: datetime
    applied_fen: int | None
    applied_by: str
    apply_time: datetime | None
    override_reason: str

    @property
    def basis_year(self) -> int:
        """The year whose outflow the proposal was sized from."""
        return self.year - 1

    @property
    def monthly_average_fen(self) -> int:
        """Outflow per month counted, half up to the fen (0 when no month was cleared)."""
        if not self.periods:
            return 0
        average = Decimal(self.outflow_fen) / len(self.periods)
        return int(average.quantize(Decimal(1), ROUND_HALF_UP))

    @property
    def rule(self) -> str:
        """The rule in words, as the operator reviews it."""
        minimum = format_money(from_fen(self.minimum_fen))
        return (
            f"{self.rule_months.normalize():f} months of the average monthly payable over the months "
            f"of {self.basis_year} cleared, at least {minimum} yuan"
        )


@dataclass(frozen=True, slots=True)
class Applied:
    """An applied proposal and the advance it set."""

    proposal: Proposal
    status: advances.AdvanceStatus


def _cleared_periods(session: Session, year: int) -> list[str]:
    """The months of ``year`` whose clearing run succeeded, in order."""
    return list(
        session.scalars(
            select(ClearingRunRecord.period)
            .where(
                ClearingRunRecord.state == RunState.SUCCEEDED.value,
                ClearingRunRecord.period.like(f"{year:04d}-%"),
            )
            .distinct()
            .order_by(ClearingRunRecord.period)
        )
    )


def _outflows(session: Session, periods: list[str]) -> dict[str, int]:
    """Each province's payable on its statements of ``periods``."""
    if not periods:
        return {}
    rows = session.execute(
        select(StatementRecord.admdvs, func.sum(StatementRecord.payable_fen))
        .where(StatementRecord.period.in_(periods))
        .group_by(StatementRecord.admdvs)
    )
    return {admdvs: int(total) for admdvs, total in rows}


def _with_advance(session: Session, years: Iterable[int]) -> set[str]:
    """The provinces with an advance in any of ``years``."""
    return set(session.scalars(select(AdvanceRecord.admdvs).where(AdvanceRecord.year.in_(list(years)))))


def propose(
    session: Session, year: int, rule: Rule, provinces: Iterable[str], now: datetime
) -> list[Proposal]:
    """Propose every province's advance for ``year``: those given, those with statements or an
    advance the year before, and those with an advance for ``year``. Applied proposals stay."""
    periods = _cleared_periods(session, year - 1)
    outflows = _outflows(session, periods)
    every = set(provinces) | set(outflows) | _with_advance(session, (year - 1, year))
    existing = {
        record.admdvs: record
        for record in session.scalars(
            select(AdvanceProposalRecord).where(AdvanceProposalRecord.year == year).with_for_update()
        )
    }
    for admdvs in sorted(every):
        record = existing.get(admdvs)
        if record is not None and record.applied_fen is not None:
            continue
        if record is None:
            record = AdvanceProposalRecord(
                year=year, admdvs=admdvs, applied_fen=None, applied_by="", apply_time=None, override_reason=""
            )
            session.add(record)
        outflow = max(outflows.get(admdvs, 0), 0)
        record.periods = ",".join(periods)
        record.outflow_fen = outflow
        record.rule_months = str(rule.months)
        record.minimum_fen = rule.minimum_fen
        record.proposed_fen = rule.proposed_fen(outflow, len(periods))
        record.propose_time = as_utc(now)
    session.flush()
    return list_proposals(session, year)


def _proposal(record: AdvanceProposalRecord, current_fen: int) -> Proposal:
    return Proposal(
        admdvs=record.admdvs,
        year=record.year,
        periods=tuple(record.periods.split(",")) if record.periods else (),
        outflow_fen=record.outflow_fen,
        rule_months=Decimal(record.rule_months),
        minimum_fen=record.minimum_fen,
        proposed_fen=record.proposed_fen,
        current_advance_fen=current_fen,
        propose_time=as_utc(record.propose_time),
        applied_fen=record.applied_fen,
        applied_by=record.applied_by,
        apply_time=as_utc(record.apply_time) if record.apply_time else None,
        override_reason=record.override_reason,
    )


def _current(session: Session, year: int, provinces: list[str]) -> dict[str, int]:
    """Each province's advance for ``year`` now, top-ups included."""
    rows = session.scalars(
        select(AdvanceRecord).where(AdvanceRecord.year == year, AdvanceRecord.admdvs.in_(provinces))
    )
    return {row.admdvs: row.set_fen + row.topped_up_fen for row in rows}


def _proposals(session: Session, records: Sequence[AdvanceProposalRecord], year: int) -> list[Proposal]:
    current = _current(session, year, [record.admdvs for record in records])
    return [_proposal(record, current.get(record.admdvs, 0)) for record in records]


def list_proposals(session: Session, year: int, admdvs: str = "") -> list[Proposal]:
    """The proposals of ``year`` by province (one province's when given)."""
    query = select(AdvanceProposalRecord).where(AdvanceProposalRecord.year == year)
    if admdvs:
        query = query.where(AdvanceProposalRecord.admdvs == admdvs)
    return _proposals(session, session.scalars(query.order_by(AdvanceProposalRecord.admdvs)).all(), year)


def page_of_proposals(
    session: Session, year: int, admdvs: str, size: int, token: str
) -> tuple[list[Proposal], str]:
    """One page of :func:`list_proposals`, and the token of the next ("" after the last)."""
    key = f"advance-proposals:{year}:{admdvs}"
    after = decode_token(token, key, 1)
    query = (
        select(AdvanceProposalRecord)
        .where(AdvanceProposalRecord.year == year)
        .order_by(AdvanceProposalRecord.admdvs)
        .limit(size + 1)
    )
    if admdvs:
        query = query.where(AdvanceProposalRecord.admdvs == admdvs)
    if after is not None:
        query = query.where(AdvanceProposalRecord.admdvs > after[0])
    records = session.scalars(query).all()
    page = records[:size]
    return _proposals(session, page, year), encode_token([page[-1].admdvs], key) if len(
        records
    ) > size else ""


def _not_found(year: int, admdvs: str) -> DomainError:
    return DomainError(
        "NOT_FOUND",
        f"no advance proposal for province {admdvs} in {year}: ProposeAdvances makes them",
        metadata={"admdvs": admdvs, "year": str(year)},
    )


def get(session: Session, year: int, admdvs: str) -> Proposal:
    """One province's proposal (NOT_FOUND when none was made)."""
    found = list_proposals(session, year, admdvs)
    if not found:
        raise _not_found(year, admdvs)
    return found[0]


def apply(
    session: Session,
    request_id: str,
    year: int,
    admdvs: str,
    override_fen: int | None,
    reason: str,
    applied_by: str,
    now: datetime,
) -> Proposal:
    """Set the year's advance to the proposal (or ``override_fen``, with its reason); once per proposal."""
    record = session.scalars(
        select(AdvanceProposalRecord)
        .where(AdvanceProposalRecord.year == year, AdvanceProposalRecord.admdvs == admdvs)
        .with_for_update()
    ).one_or_none()
    if record is None:
        raise _not_found(year, admdvs)
    if record.applied_fen is not None:
        raise DomainError(
            "ADVANCE_PROPOSAL_APPLIED",
            f"the advance proposal of {admdvs} for {year} was applied by {record.applied_by} "
            f"on {as_utc(record.apply_time or now).date()}: change the advance with SetAdvance or TopUpAdvance",
            metadata={"admdvs": admdvs, "year": str(year)},
        )
    amount_fen = override_fen if override_fen is not None else record.proposed_fen
    if amount_fen == 0:
        raise invalid(
            "INVALID_ARGUMENT",
            "amount_fen",
            f"the proposal of {admdvs} for {year} is 0 fen (no outflow cleared): give an amount and a reason",
        )
    advances.set_advance(session, request_id, admdvs, year, amount_fen, now)
    record.applied_fen, record.applied_by, record.apply_time = amount_fen, applied_by, as_utc(now)
    record.override_reason = reason if override_fen is not None else ""
    session.flush()
    return get(session, year, admdvs)
