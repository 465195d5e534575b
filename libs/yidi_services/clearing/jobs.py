"""The life of the clearing service's long-running jobs (clearing runs and reconciliations).

Both are recorded as pending, run in a background thread and end succeeded or failed; they
share one state vocabulary and one mapping onto the API's ``JobState``.
"""

from __future__ import annotations

from enum import StrEnum

from yidi.clearing.v1 import statement_pb2


class RunState(StrEnum):
    """A job's life: pending → running → succeeded | failed."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


JOB_STATES = {
    RunState.PENDING: statement_pb2.JOB_STATE_PENDING,
    RunState.RUNNING: statement_pb2.JOB_STATE_RUNNING,
    RunState.SUCCEEDED: statement_pb2.JOB_STATE_SUCCEEDED,
    RunState.FAILED: statement_pb2.JOB_STATE_FAILED,
}
"""Each state as the API's ``JobState``."""
