"""`yidi serve`: run one node until SIGTERM or Ctrl-C, then shut down gracefully."""

from __future__ import annotations

import signal
import threading
from types import FrameType

from yidi_runtime.config import NodeSettings
from yidi_runtime.logs import configure_logging, get_logger

GRACE_SECONDS = 10.0


def run_node(settings: NodeSettings) -> int:
    """Start the node, block until a stop signal, drain calls, and return the exit status."""
    from yidi_services.node import start_node

    configure_logging(settings.log_level, settings.log_format)
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        get_logger(node=settings.label).info("stop requested", signal=signal.Signals(signum).name)
        stop.set()

    # Before the node starts: it reports SERVING while starting, and a supervisor may stop it at once.
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    node = start_node(settings)
    stop.wait()
    node.stop(GRACE_SECONDS)
    return 0
