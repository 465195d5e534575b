"""AIP-158 pages for every list method: page sizes, and opaque keyset tokens bound to their query.

A token carries the ordering key of the last row served (so no page ever counts or skips
rows, and rows added between pages are neither repeated nor lost) plus a digest of the
query it was issued for: reusing it with other filters, or sending a damaged one, is
``INVALID_ARGUMENT`` rather than a silently wrong page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from yidi_core.errors import DomainError, invalid

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(requested: int, field: str = "page_size") -> int:
    """0 means the default; above the maximum is coerced down; negative is refused."""
    if requested < 0:
        raise invalid("INVALID_ARGUMENT", field, f"must not be negative, got {requested}")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _digest(query: object) -> str:
    return hashlib.sha256(json.dumps(query, sort_keys=True, default=str).encode()).hexdigest()[:16]


def bad_token(field: str = "page_token", why: str = "is not a token this list issued") -> DomainError:
    """The refusal of a token this service did not issue for this query."""
    return invalid("INVALID_ARGUMENT", field, why)


def encode_token(last_key: list[str], query: object) -> str:
    """The token for the page after the row whose ordering key is ``last_key``."""
    payload = json.dumps({"k": last_key, "q": _digest(query)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_token(token: str, query: object, key_length: int, field: str = "page_token") -> list[str] | None:
    """The last key a token carries (None for the first page); a foreign or damaged token is refused."""
    if not token:
        return None
    try:
        payload: Any = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        key, digest = payload["k"], payload["q"]
    except (ValueError, binascii.Error, TypeError, KeyError):
        raise bad_token(field) from None
    if digest != _digest(query):
        raise bad_token(field, "was issued for a different query")
    if not (isinstance(key, list) and len(key) == key_length and all(isinstance(part, str) for part in key)):
        raise bad_token(field)
    return key
