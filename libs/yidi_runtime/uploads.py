"""Client-streamed uploads (a header message, then file chunks), read whole before anything is stored.

Imports are all-or-nothing, so a servicer needs the complete file before it can validate a
single row; this reads the stream and refuses one that does not start with its header.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from yidi_core.errors import invalid


def read_upload(messages: Iterable[Any]) -> tuple[Any, bytes]:
    """The header and the concatenated ``csv_chunk`` bytes of an ``oneof part {header, csv_chunk}`` stream."""
    received = list(messages)
    if not received or received[0].WhichOneof("part") != "header":
        raise invalid("INVALID_ARGUMENT", "header", "must be the first message of the stream")
    if any(message.WhichOneof("part") != "csv_chunk" for message in received[1:]):
        raise invalid("INVALID_ARGUMENT", "header", "must be sent once, before the CSV chunks")
    return received[0].header, b"".join(message.csv_chunk for message in received[1:])
