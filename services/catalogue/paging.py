"""AIP-158 pagination: page sizes with a default and a maximum, opaque tokens bound to the query."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import date
from typing import Any

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from yidi_core.errors import invalid

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(requested: int, field: str = "page_size") -> int:
    """0 means the default; above the maximum is coerced down; negative is refused."""
    if requested < 0:
        raise invalid("INVALID_ARGUMENT", field, f"must not be negative, got {requested}")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _fingerprint(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()[:16]


def bad_token(field: str = "page_token") -> Exception:
    """The refusal of a token this service did not issue for this query."""
    return invalid("INVALID_ARGUMENT", field, "is not a token this query returned")


def encode_token(query: str, position: Any) -> str:
    """An opaque token for the next page of ``query``, resuming at ``position``."""
    payload = json.dumps({"q": _fingerprint(query), "p": position}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode()


def decode_token(token: str, query: str, field: str = "page_token") -> Any:
    """The position a token resumes at (None for the first page).

    A token from another query, or not from this service at all, is INVALID_ARGUMENT.
    """
    if not token:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, UnicodeError):
        payload = None
    if not isinstance(payload, dict) or payload.get("q") != _fingerprint(query) or "p" not in payload:
        raise bad_token(field)
    return payload["p"]


def newest_first_page(
    session: Session, statement: Select[Any], model: Any, size: int, token: str, query: str
) -> tuple[list[Any], str]:
    """One page of versioned rows, newest ``effective_date`` first (then newest import).

    The token carries the last row's date and key, so an import between two pages neither
    repeats nor skips a row already paged past.
    """
    after = decode_token(token, query)
    if after is not None:
        try:
            day, pk = date.fromisoformat(after[0]), int(after[1])
        except (TypeError, ValueError, IndexError, KeyError):
            raise bad_token() from None
        statement = statement.where(
            or_(model.effective_date < day, and_(model.effective_date == day, model.id < pk))
        )
    records = session.scalars(
        statement.order_by(model.effective_date.desc(), model.id.desc()).limit(size + 1)
    ).all()
    page = list(records[:size])
    if len(records) <= size:
        return page, ""
    return page, encode_token(query, [page[-1].effective_date.isoformat(), page[-1].id])
