"""Pages of versioned rows (catalogue and policy versions), newest first."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from yidi_runtime.paging import bad_token, decode_token, encode_token


def newest_first_page(
    session: Session, statement: Select[Any], model: Any, size: int, token: str, query: str
) -> tuple[list[Any], str]:
    """One page of versioned rows, newest ``effective_date`` first (then newest import).

    The token carries the last row's date and key, so an import between two pages neither
    repeats nor skips a row already paged past.
    """
    after = decode_token(token, query, 2)
    if after is not None:
        try:
            day, pk = date.fromisoformat(after[0]), int(after[1])
        except ValueError:
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
    return page, encode_token([page[-1].effective_date.isoformat(), str(page[-1].id)], query)
