"""Structured logs: structlog JSON lines carrying node, service and request id, personal data masked.

Context lives in contextvars (bound per RPC by the interceptor), timestamps are ISO UTC,
and every string that looks like an 18-character ID number is masked before rendering,
whatever key it hides under.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[\dXx])(?![0-9A-Za-z])")
_ID_NUMBER_LENGTH = 18
"""What :data:`_ID_NUMBER` matches is exactly this long: a shorter string holds none (most log values)."""
_NAME_KEYS = frozenset({"psn_name", "name_of_person", "person_name", "applicant_name"})
_ID_KEYS = frozenset({"certno", "id_number", "psn_cert_no", "mdtrt_cert_no"})


def mask_id_number(value: str) -> str:
    """``110101199003071234`` → ``110101********1234``: the region and check tail only."""
    if len(value) < _ID_NUMBER_LENGTH:
        return value
    return _ID_NUMBER.sub(lambda m: f"{m.group(1)}********{m.group(2)}", value)


def mask_name(value: str) -> str:
    """``张三丰`` → ``张**``: enough for a clerk to recognise, not to identify."""
    return value[:1] + "*" * (len(value) - 1) if value else value


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_id_number(value)
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    return value


def mask_personal_data(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask ID numbers anywhere and names under the known keys.

    Every line passes here (the rpc line of every call): numbers and None are left alone at once.
    """
    for key, value in list(event.items()):
        if isinstance(value, str):
            if key in _NAME_KEYS:
                event[key] = mask_name(value)
            elif key in _ID_KEYS:
                event[key] = mask_id_number(value) if _ID_NUMBER.search(value) else "***"
            else:
                event[key] = mask_id_number(value)
        elif isinstance(value, dict | list | tuple):
            event[key] = _mask(value)
    return event


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog once per process; ``fmt`` is ``json``, ``console`` or ``auto`` (TTY)."""
    output = stream or sys.stdout
    console = fmt == "console" or (fmt == "auto" and output.isatty())
    renderer: Any = structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            mask_personal_data,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(output),
        cache_logger_on_first_use=False,
    )


def get_logger(**context: Any) -> Any:
    """A bound structlog logger."""
    return structlog.get_logger().bind(**context)
