"""Province → national: push this node's institution changes to its parent (PushInstitutions).

Until the durable outbox (settlement issue) delivers changes by itself, a province operator
runs ``yidi registry sync`` (by hand after an import, or from a cron/systemd timer): the
node sends every record its parent has not acknowledged to the parent's SyncInstitutions,
in batches by code, and records a batch's versions as acknowledged only after the parent
answered. So nothing is lost and nothing is doubled:

* a lost answer leaves the batch unacknowledged; the next push sends the same versions,
  which the parent counts as stale (it keeps the highest version of each record);
* a record changed while its batch was in flight stays pending at its newer version;
* a failure half-way keeps the batches already acknowledged, and the next push goes on.

Acknowledgements are kept per record and parent region (``registry_pushed_versions``), not
as one timestamp mark, which two writers committing out of clock order could skip past. A
city node pushes to its province the same way, and the province passes the records on.

No background timer: a node has no hook to stop one on shutdown yet, and an operator can
see and schedule an explicit command.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from yidi_runtime.db import Database
from yidi_services.registry import store
from yidi_services.registry.handlers import SyncResult
from yidi_services.registry.institutions import Institution

BATCH_SIZE = 500
"""Records per SyncInstitutions call: ≈150 kB, well inside gRPC's 4 MB message limit."""

DEADLINE_S = 30.0
"""How long the parent may take to store one batch."""

Send = Callable[[Sequence[Institution]], SyncResult]
"""Delivers one batch to the parent and returns its answer; raises when there is none."""


@dataclass(frozen=True)
class PushResult:
    """What one push did: records sent, and how the parent counted them."""

    sent_count: int = 0
    applied_count: int = 0
    stale_count: int = 0
    batch_count: int = 0


def push(database: Database, parent_region: str, send: Send, batch_size: int = BATCH_SIZE) -> PushResult:
    """Send every record ``parent_region`` has not acknowledged, one pass in code order.

    Each batch is read, sent and acknowledged in its own short transaction, so no database
    lock is held while waiting for the parent.
    """
    result, after = PushResult(), ""
    while True:
        with database.unit_of_work() as uow:
            batch = store.unpushed(uow.session, parent_region, after, batch_size)
        if not batch:
            return result
        answer = send(batch)
        with database.unit_of_work(write=True) as uow:
            store.acknowledge(uow.session, parent_region, batch)
            uow.commit()
        result = PushResult(
            result.sent_count + len(batch),
            result.applied_count + answer.applied_count,
            result.stale_count + answer.stale_count,
            result.batch_count + 1,
        )
        if len(batch) < batch_size:
            return result
        after = batch[-1].code
