"""AIP-158 pages with keyset tokens: the token carries the last key, so no page ever counts rows.

A token is opaque to clients (base64 of JSON); it also carries a digest of the filters it
was issued for, so reusing it with other filters is refused instead of silently skipping rows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from yidi_core.errors import invalid

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(requested: int) -> int:
    """0 → the default, above the maximum → the maximum, negative → INVALID_ARGUMENT."""
    if requested < 0:
        raise invalid("INVALID_ARGUMENT", "page_size", f"must not be negative, got {requested}")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _digest(filters: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(filters, sort_keys=True, default=str).encode()).hexdigest()[:16]


def encode_token(last_key: list[str], filters: Mapping[str, Any]) -> str:
    """The token for the page after the row whose ordering key is ``last_key``."""
    payload = json.dumps({"k": last_key, "f": _digest(filters)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_token(token: str, filters: Mapping[str, Any], key_length: int) -> list[str] | None:
    """The last key a token carries (None for the first page); a foreign or damaged token is refused."""
    if not token:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        key, digest = payload["k"], payload["f"]
    except (ValueError, binascii.Error, TypeError, KeyError):
        raise invalid("INVALID_ARGUMENT", "page_token", "is not a token this list issued") from None
    if digest != _digest(filters):
        raise invalid("INVALID_ARGUMENT", "page_token", "was issued for different filters")
    if not (isinstance(key, list) and len(key) == key_length and all(isinstance(part, str) for part in key)):
        raise invalid("INVALID_ARGUMENT", "page_token", "is not a token this list issued")
    return key
