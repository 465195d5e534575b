"""Province → national: an operator's catch-up of this node's institution records at its parent (PushInstitutions).

The registry outbox (:mod:`yidi_services.registry.propagation`) sends every change to the
parent by itself and records what it delivered as acknowledged. ``yidi registry sync``
remains for what it never queued (records stored before this release, or before the node
had a parent): the node sends every record its parent has not acknowledged to the parent's
SyncInstitutions, in batches by code, and records a batch's versions as acknowledged only
after the parent answered. So nothing is lost and nothing is doubled:

* a lost answer leaves the batch unacknowledged; the next push sends the same versions,
  which the parent counts as stale (it keeps the highest version of each record);
* a record changed while its batch was in flight stays pending at its newer version;
* a failure half-way keeps the batches already acknowledged, and the next push goes on.

Acknowledgements are kept per record and parent region (``registry_pushed_versions``), not
as one timestamp mark, which two writers committing out of clock order could skip past. A
city node pushes to its province the same way, and the province passes the records on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from yidi_runtime.db import Database
from yidi_services.registry import store
from yidi_services.registry.handlers import SyncResult
from yidi_services.registry.institutions import Institution
from yidi_services.registry.propagation import BATCH_SIZE

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
            store.acknowledge(uow.session, parent_region, [(i.code, i.version) for i in batch])
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
