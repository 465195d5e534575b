"""Text no request may carry: bytes that are not the request, and control characters in any string.

Every request is checked before its handler runs, whatever the method: the interceptor
wraps each method's deserializer with :func:`checked` and calls :func:`ensure_sound` on each
request message (after authentication, before authorization and the handler; a streamed
request message by message as the handler reads it).

- Bytes that do not decode as the method's request (not protobuf, or a string field that is
  not UTF-8) are refused INVALID_ARGUMENT, where gRPC alone would answer a bare INTERNAL
  "Exception deserializing request". The violation's path is empty: the request as a whole.
- A string field at any depth (nested messages, repeated fields, map keys and values)
  holding a character :data:`REFUSED_CHARACTERS` matches is refused INVALID_ARGUMENT naming
  its path, e.g. ``items[2].medins_list_codg``, one violation per bad string.

The refused characters are the C0 control characters but tab, line feed and carriage return
(U+0000–U+0008, U+000B, U+000C, U+000E–U+001F), DEL (U+007F) and the C1 control characters
(U+0080–U+009F). No identifier, code, name or note of this API holds one; PostgreSQL
refuses NUL in text outright while SQLite stores it, and the others garble logs, terminals
and the files exported from them. Tab and line breaks stay allowed for free text. Bytes
fields are not looked into here: an imported CSV file is checked whole once decoded
(:func:`ensure_sound_file`), and a policy document's TOML parser refuses control characters.

The walk visits only the fields a request sets (``ListFields``), skips messages that cannot
hold a string (timestamps, dates) and formats a path only for a refusal: a small request
costs a few microseconds, a 5,000-line upload a few tens of milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from google.protobuf import empty_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from yidi_core.errors import DomainError, FieldViolation, combine, invalid

REFUSED_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
"""What no string of a request may hold (see the module docstring)."""

_search = REFUSED_CHARACTERS.search
_SKIP, _TEXT, _TEXTS, _MESSAGE, _MESSAGES, _MAP = range(6)
_kinds: dict[FieldDescriptor, int] = {}

Path = tuple[Any, str, int | str | None] | None
"""A field's path as a linked list ``(parent, field name, index or map key)``, formatted only when refused."""


@dataclass(frozen=True, slots=True)
class Refused:
    """What a :func:`checked` deserializer hands on in place of bytes it could not decode.

    Its ``DESCRIPTOR`` is that of a message without fields, so the interceptor, which reads
    the request id of what it is handed before anything else, finds none.
    """

    error: DomainError
    DESCRIPTOR = empty_pb2.Empty.DESCRIPTOR


def checked(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """``deserializer`` handing on a :class:`Refused` for bytes that are not the request, instead of raising."""
    if deserializer is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError:
            return Refused(_undecodable())

    return decode


def ensure_sound(request: object) -> None:
    """Refuse a request its deserializer could not decode, or one with a refused character in a string.

    ``request`` is what a :func:`checked` deserializer handed on (None, for a stream not read
    yet, passes).
    """
    if type(request) is Refused:
        raise request.error
    if isinstance(request, Message):
        error = refusal(request)
        if error is not None:
            raise error


def refusal(message: Message) -> DomainError | None:
    """INVALID_ARGUMENT naming every string field of ``message`` that holds a refused character, or None."""
    return combine(
        invalid("INVALID_ARGUMENT", _formatted(path), _described(text))
        for path, text in _refused_in(message, None)
    )


def ensure_sound_file(text: str, field: str) -> None:
    """Refuse an uploaded text file (a CSV import) holding a refused character, naming ``field`` and the line.

    Its cells become the same stored strings a request's fields do, so they meet the same rule.
    """
    found = _search(text)
    if found is not None:
        line = text.count("\n", 0, found.start()) + 1
        raise invalid(
            "INVALID_ARGUMENT",
            field,
            f"line {line} holds U+{ord(found.group()):04X}, a control character no text may hold",
        )


def _undecodable() -> DomainError:
    description = (
        "is not a protobuf message of this method's request type, or holds a string that is not UTF-8"
    )
    return DomainError("INVALID_ARGUMENT", f"the request {description}", (FieldViolation("", description),))


def _described(text: str) -> str:
    match = _search(text)
    assert match is not None
    return f"holds U+{ord(match.group()):04X}, a control character no string of a request may hold"


def _formatted(path: Path) -> str:
    parts: list[str] = []
    while path is not None:
        path, name, index = path
        parts.append(name if index is None else f"{name}[{index}]")
    return ".".join(reversed(parts))


def _refused_in(message: Message, parent: Path) -> Iterator[tuple[Path, str]]:
    for field, value in message.ListFields():
        kind = _kinds.get(field)
        if kind is None:
            kind = _kinds.setdefault(field, _kind(field))
        if kind == _TEXT:
            if _search(value):
                yield (parent, field.name, None), value
        elif kind == _MESSAGE:
            yield from _refused_in(value, (parent, field.name, None))
        elif kind == _MESSAGES:
            for index, item in enumerate(value):
                yield from _refused_in(item, (parent, field.name, index))
        elif kind == _TEXTS:
            for index, text in enumerate(value):
                if _search(text):
                    yield (parent, field.name, index), text
        elif kind == _MAP:
            yield from _refused_in_map(field, value, parent)


def _refused_in_map(field: FieldDescriptor, entries: Any, parent: Path) -> Iterator[tuple[Path, str]]:
    key_field, value_field = (
        field.message_type.fields_by_name["key"],
        field.message_type.fields_by_name["value"],
    )
    for key, value in entries.items():
        path: Path = (parent, field.name, repr(key))
        if key_field.type == FieldDescriptor.TYPE_STRING and _search(key):
            yield path, key
        if value_field.type == FieldDescriptor.TYPE_STRING:
            if _search(value):
                yield path, value
        elif value_field.type == FieldDescriptor.TYPE_MESSAGE:
            yield from _refused_in(value, path)


def _kind(field: FieldDescriptor) -> int:
    if field.type == FieldDescriptor.TYPE_STRING:
        return _TEXTS if field.is_repeated else _TEXT
    if field.type != FieldDescriptor.TYPE_MESSAGE:
        return _SKIP
    if field.message_type.GetOptions().map_entry:
        return _MAP
    if _text_free(field.message_type):
        return _SKIP
    return _MESSAGES if field.is_repeated else _MESSAGE


@cache
def _text_free(descriptor: Descriptor) -> bool:
    """Whether no message of this type can hold a string at any depth (Timestamp, Date, …)."""
    return _text_free_below(descriptor, frozenset())


def _text_free_below(descriptor: Descriptor, enclosing: frozenset[Descriptor]) -> bool:
    if descriptor in enclosing:  # a recursive type: its fields are being looked at already
        return True
    inner = enclosing | {descriptor}
    return all(
        field.type != FieldDescriptor.TYPE_STRING
        and (field.type != FieldDescriptor.TYPE_MESSAGE or _text_free_below(field.message_type, inner))
        for field in descriptor.fields
    )
