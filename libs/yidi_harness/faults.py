"""Fault injection for the demo: holes the public API cannot make, planted in a node's own database.

FOR DEMONSTRATION AND TESTS ONLY. Nothing here is an operation a real node offers. The
domain brief's story that must never repeat (domain README §6): a Qinghai patient settled
at discharge in Jiaxing, the record never reached the Qinghai centre, and Qinghai never paid
Zhejiang. A settlement made through the HIS API leaves no such hole — the outboxes deliver
the journal entry and the confirmation exactly once — so the demo makes one by hand, as if
two messages had been lost on the way after the treatment node recorded the settlement:

- the national journal never received the entry: its row is deleted at the national node;
  the reconciliation has to find that from the records alone, and repair it from the
  treatment node's durable record;
- the insured node never received the confirmation: its application is put back to an
  unconfirmed hold that is already due. The insured node's own hold worker then does what
  it does for any hold left unconfirmed: it asks the treatment node that applied it, which
  answers from its commit record that it recorded the settlement — so the hold is confirmed
  again, never voided by guessing (DESIGN.md principle 9).

Both are done with SQLAlchemy Core against the tables of the service that owns them,
through that node's own database handle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select, update

from yidi_core.codes import NATIONAL_REGION
from yidi_harness.federation import Federation
from yidi_harness.polling import TimedOut, eventually
from yidi_runtime.db import Database
from yidi_runtime.settlement_keys import settlement_key
from yidi_services.clearing.models import JournalEntryRecord
from yidi_services.settlement.insured.models import ApplicationRow, ApplicationState

_LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)
_POLL_S = 0.1


class FaultNotPlanted(RuntimeError):
    """The hole could not be planted (the settlement never reached a side, or its hold was not resolved in time)."""


@dataclass(frozen=True)
class LostSettlement:
    """The hole planted: the settlement's msgid and the insured node that lost (and resolved) its confirmation."""

    msgid: str
    insured_node: str


def service_database(federation: Federation, region: str, service: str) -> Database:
    """The database one service of the node of ``region`` keeps its tables in."""
    node = federation.nodes[region]
    for running in node.services:
        if running.group.name == service:
            return running.database
    raise FaultNotPlanted(f"the node of {region} runs no {service} service")


def _until(condition: Callable[[], bool], what: str, timeout_s: float) -> None:
    try:
        eventually(condition, within_s=timeout_s, interval_s=_POLL_S, what=what)
    except TimedOut as error:
        raise FaultNotPlanted(str(error)) from error


def _application(database: Database, request_id: str) -> str | None:
    table = ApplicationRow.__table__
    with database.engine.connect() as connection:
        return connection.execute(select(table.c.state).where(table.c.request_id == request_id)).scalar()


def lose_settlement_on_the_way(
    federation: Federation, fixmedins_code: str, msgid: str, insured_region: str, timeout_s: float = 20.0
) -> LostSettlement:
    """Plant the Qinghai–Jiaxing hole for one cross-province settlement, once both deliveries arrived.

    Waits (bounded) for the insured node to confirm the application and for the national
    journal to hold the entry, then loses both as the module docstring says, and waits for
    the insured node's hold worker to resolve the hold by asking the treatment node.
    """
    insured_node = federation.host_of(insured_region, "settlement")
    insured = service_database(federation, insured_node, "settlement")
    national = service_database(federation, NATIONAL_REGION, "clearing")
    applications, journal = ApplicationRow.__table__, JournalEntryRecord.__table__
    request_id = f"{settlement_key(fixmedins_code, msgid)}:apply"

    def confirmation_lost() -> bool:
        # Only a confirmed application is put back, so a confirmation still on its way cannot undo the fault.
        with insured.engine.begin() as connection:
            return (
                connection.execute(
                    update(applications)
                    .where(
                        applications.c.request_id == request_id,
                        applications.c.state == ApplicationState.CONFIRMED.value,
                    )
                    .values(state=ApplicationState.HELD.value, confirmed_at=None, hold_expires_at=_LONG_AGO)
                ).rowcount
                == 1
            )

    def entry_lost() -> bool:
        with national.engine.begin() as connection:
            lost = delete(journal).where(journal.c.fixmedins_code == fixmedins_code, journal.c.msgid == msgid)
            return connection.execute(lost).rowcount == 1

    _until(confirmation_lost, f"the confirmation of {msgid} at {insured_node}", timeout_s)
    _until(entry_lost, f"the national journal entry {msgid}", timeout_s)
    _until(
        lambda: _application(insured, request_id) == ApplicationState.CONFIRMED.value,
        f"{insured_node} resolving the unconfirmed hold of {msgid} by asking its treatment node",
        timeout_s,
    )
    return LostSettlement(msgid, insured_node)
