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

Every request pays for the check, so it is done in two steps. First, the strings of the
request are read through a plan made once per message type (which fields hold strings,
which nested messages can; timestamps and dates cannot) and searched in one go: nearly every
request stops there. Only when that finds a refused character does :func:`refusal` walk the
fields the request sets (``ListFields``) to name each bad string's path. Both read the same
strings (an unset string reads as ""), so the first step lets through exactly what the walk
would; a message type that may carry extensions is left to the walk alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from itertools import chain
from operator import attrgetter
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
    if isinstance(request, Message) and _may_hold_refused(request):
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


class _Plan:
    """Where the strings of one message type are, for :func:`_gather` (made once per type by :func:`_plan_of`).

    ``texts`` reads the singular string fields at once (a tuple); ``text_lists`` names the
    repeated ones; ``messages`` and ``message_lists`` are the fields of message types that
    can hold a string, with their plans; ``maps`` are (name, keys are strings, values are
    strings, the values' plan when they are messages that can hold one). ``flat``: nothing
    but ``texts``, so a list of such messages is read without a call per message.
    """

    __slots__ = ("flat", "maps", "message_lists", "messages", "text_lists", "texts")

    def __init__(self) -> None:
        self.texts: Callable[[Message], tuple[str, ...]] = _no_texts
        self.text_lists: tuple[str, ...] = ()
        self.messages: tuple[tuple[str, _Plan], ...] = ()
        self.message_lists: tuple[tuple[str, _Plan], ...] = ()
        self.maps: tuple[tuple[str, bool, bool, _Plan | None], ...] = ()
        self.flat = True


class _Unplanned(Exception):
    """A message type that may carry extensions, at any depth: :func:`refusal` alone reads it."""


def _no_texts(_message: Message) -> tuple[str, ...]:
    return ()


_plans: dict[Descriptor, _Plan | None] = {}


def _may_hold_refused(message: Message) -> bool:
    """False when no string of ``message`` holds a refused character; True when :func:`refusal` must look."""
    plan = _plan_of(message.DESCRIPTOR)
    if plan is None:
        return True
    texts: list[str] = []
    _gather(message, plan, texts)
    return _search("".join(texts)) is not None


def _gather(message: Message, plan: _Plan, texts: list[str]) -> None:
    """Append every string ``message`` holds to ``texts`` (unset singular ones as "")."""
    texts.extend(plan.texts(message))
    if plan.flat:
        return
    for name in plan.text_lists:
        texts.extend(getattr(message, name))
    for name, inner in plan.messages:
        if message.HasField(name):
            _gather(getattr(message, name), inner, texts)
    for name, inner in plan.message_lists:
        if inner.flat:
            texts.extend(chain.from_iterable(map(inner.texts, getattr(message, name))))
        else:
            for item in getattr(message, name):
                _gather(item, inner, texts)
    for name, text_keys, text_values, inner in plan.maps:
        entries = getattr(message, name)
        if text_keys:
            texts.extend(entries)
        if text_values:
            texts.extend(entries.values())
        elif inner is not None:
            for value in entries.values():
                _gather(value, inner, texts)


def _plan_of(descriptor: Descriptor) -> _Plan | None:
    """The plan of a message type, made on first use; None for one that may carry extensions.

    Plans are kept only once every type they reach is planned, so a plan is never seen half made.
    """
    if descriptor not in _plans:
        made: dict[Descriptor, _Plan] = {}
        try:
            _make(descriptor, made)
        except _Unplanned:
            _plans[descriptor] = None
        else:
            _plans.update(made)
    return _plans[descriptor]


def _make(descriptor: Descriptor, made: dict[Descriptor, _Plan]) -> _Plan:
    known = _plans[descriptor] if descriptor in _plans else made.get(descriptor)
    if known is not None:
        return known
    if descriptor in _plans or descriptor.extension_ranges:
        raise _Unplanned(descriptor.full_name)
    plan = made[descriptor] = _Plan()  # before its fields: a recursive type finds itself
    texts: list[str] = []
    for field in descriptor.fields:
        kind = _kind(field)
        if kind == _TEXT:
            texts.append(field.name)
        elif kind == _TEXTS:
            plan.text_lists += (field.name,)
        elif kind == _MESSAGE:
            plan.messages += ((field.name, _make(field.message_type, made)),)
        elif kind == _MESSAGES:
            plan.message_lists += ((field.name, _make(field.message_type, made)),)
        elif kind == _MAP:
            key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            inner = None
            if value.type == FieldDescriptor.TYPE_MESSAGE and not _text_free(value.message_type):
                inner = _make(value.message_type, made)
            text_key, text_value = (part.type == FieldDescriptor.TYPE_STRING for part in (key, value))
            if text_key or text_value or inner is not None:
                plan.maps += ((field.name, text_key, text_value, inner),)
    if texts:
        # attrgetter of one name gives the value, not a tuple: name it twice (reading it twice is harmless)
        plan.texts = attrgetter(*texts) if len(texts) > 1 else attrgetter(texts[0], texts[0])
    plan.flat = not (plan.text_lists or plan.messages or plan.message_lists or plan.maps)
    return plan
