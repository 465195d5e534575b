"""Hypothesis strategies for any protobuf request, built from its descriptor.

Values are drawn from a mix a clerk's or a broken HIS's input could hold: codes that look
valid (the samples' regions, institutions, items and persons), codes that are almost valid,
empty and very long strings, unicode, values with a NUL byte or another control character
slipped in, integers at their type's bounds, dates that do not exist, enum numbers no enum
defines, lists from empty to thousands of items, and any field left out. Field names choose the pool (``*_admdvs`` draws regions, ``*_fen`` money, …), so
part of every run looks right enough to reach the code behind the first check.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import date, datetime
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"
MAX_DEPTH = 4
"""Message nesting beyond this is left unset: bounded size, and recursive types terminate."""
HUGE_LIST = 5_000
LONG_STRING = 10_000

_INT_BOUNDS = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


class Mode(Enum):
    """How a value is drawn: anything, anything but huge, or plausible for the loaded node."""

    WILD = "wild"
    """Any value, including very long strings and lists of thousands."""
    SMALL = "small"
    """Any value but those: what goes into each element of a list (a request stays under 4 MiB)."""
    PLAUSIBLE = "plausible"
    """Every field set to a value that could be right: such requests get past the first checks."""


def _sample_column(path: Path, column: str) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return [row[column] for row in csv.DictReader(handle) if row.get(column)]


INSTITUTIONS = _sample_column(SAMPLES / "institutions.csv", "fixmedins_code")
CERTNOS = _sample_column(SAMPLES / "persons.csv", "certno")
ITEM_CODES = sorted(
    {code for path in (SAMPLES / "catalogues").glob("*.csv") for code in _sample_column(path, "code")}
)
REGIONS = ["000000", "110000", "110105", "130000", "130105", "131000", "140100", "440300", "630000"]

_WRONG_CODES = [
    "11000",
    "1100000",
    "ABCDEF",
    "999999",
    "110000 ",
    "H1101050000",
    "X11010500001",
    "11010519491231002",
    "11010519491231002Y",
    "131000195402270171",
    "2026-13",
    "-1",
    "0",
    "NaN",
    "null",
    "'; DROP TABLE x; --",
    "%",
    "\x00",
]

CONTROL_CHARACTERS = ["\x00", "\x01", "\x08", "\x0b", "\x1b", "\x1f", "\x7f", "\x85", "\x9b"]
"""Characters no string of a request may hold (yidi_runtime.text_checks): NUL, C0, DEL, C1."""

_DECIMALS = ["0", "1", "0.5", "12.50", "-1", "-0.01", "1e308", "1E+30", "NaN", "sNaN", "Infinity", "-inf"]
_DECIMALS += ["0.0000001", "99999999999999999999.99", "1,5", "abc", " 3 ", "1.2.3"]

HEBEI_ITEMS = _sample_column(SAMPLES / "catalogues" / "130000-hebei.csv", "code")
_POOLS: list[tuple[Callable[[str], bool], list[str], list[str]]] = [
    (
        lambda name: "admdvs" in name or "admvs" in name or name == "setl_optins",
        REGIONS,
        ["130000", "130105", "130100", "131000"],
    ),
    (
        lambda name: "fixmedins" in name or name == "designated_institutions",
        INSTITUTIONS,
        ["H13010500001", "H13010200001"],
    ),
    (lambda name: "certno" in name, CERTNOS, ["131000195402270170", "131000198309180289"]),
    (lambda name: "list_codg" in name or name == "codes", ITEM_CODES, HEBEI_ITEMS),
    (lambda name: name == "insutype", ["310", "390", "320", "999"], ["310", "390"]),
    (
        lambda name: name in {"med_type", "clr_type"},
        ["11", "14", "21", "41", "99", "1401"],
        ["11", "14", "21"],
    ),
    (lambda name: "psn_type" in name, ["1101", "1201", "1501", "retired", "employed"], ["1101", "1201"]),
    (
        lambda name: "period" in name,
        ["2026-10", "2026-01", "2022-07", "2026-13", "202610", "2026-00"],
        ["2026-10", "2022-07"],
    ),
    (lambda name: name == "chronic_disease", ["M03900", "M01600", "E11.900", "I10.x00"], ["M01600"]),
    (lambda name: name == "diagnoses", ["M03900", "M01600", "E11.900", "I10.x00"], ["E11.900"]),
    (lambda name: name in {"pric", "cnt", "selfpay_prop", "pric_uplmt_amt"}, _DECIMALS, ["1", "12.50", "2"]),
    (lambda name: name == "mdtrt_cert_type", ["01", "02", "03", "04"], ["02"]),
    (lambda name: "level" in name or name == "chrgitm_lv", ["1", "2", "3", "01", "02", "03"], ["1", "3"]),
    (lambda name: name == "opter_type", ["1", "2", "3"], ["1"]),
    (lambda name: name == "page_token", ["AAAA", "eyJ4IjoxfQ", "not base64!"], [""]),
]
"""Per kind of field: values to fuzz with, and plausible values centred on the loaded Hebei node."""


def _long_text() -> st.SearchStrategy[str]:
    """Up to :data:`LONG_STRING` characters, built by repetition (hypothesis bounds its own buffer)."""
    return st.tuples(st.text(min_size=1, max_size=3), st.integers(1_000, LONG_STRING)).map(
        lambda pair: (pair[0] * pair[1])[: pair[1]]
    )


def _with_control(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A value with one control character slipped in anywhere (a NUL byte from a C string, an ESC from a terminal)."""
    return st.builds(
        lambda value, character, at: (
            value[: at % (len(value) + 1)] + character + value[at % (len(value) + 1) :]
        ),
        values,
        st.sampled_from(CONTROL_CHARACTERS),
        st.integers(0, 64),
    )


def _msgids(institutions: list[str] = INSTITUTIONS) -> st.SearchStrategy[str]:
    """National message ids: an institution, ``yyyyMMddHHmmss`` and a 4-digit sequence (30 characters)."""
    return st.builds(
        lambda institution, instant, sequence: f"{institution}{instant:%Y%m%d%H%M%S}{sequence:04d}",
        st.sampled_from(institutions),
        st.datetimes(datetime(2022, 1, 1), datetime(2026, 12, 31)),
        st.integers(0, 9999),
    )


def _ids() -> st.SearchStrategy[str]:
    """Identifiers: fresh ones that name nothing, plus lengths at and over the 64-character column."""
    return st.one_of(
        _msgids(),
        st.uuids().map(lambda value: value.hex),
        st.integers(0, 10**6).map(lambda n: f"{n:030d}"),
        st.sampled_from(["x" * 64, "x" * 65, "x" * 200]),
    )


@cache
def string_strategy(name: str, mode: Mode) -> st.SearchStrategy[str]:
    """A string for the field called ``name``: its pool's values first, then anything.

    Plausible strings are only values that could be right on the loaded node (no junk).
    """
    wild, focus = next(((w, f) for matches, w, f in _POOLS if matches(name)), (None, None))
    is_id = name.endswith(("_id", "_ids", "_no", "msgid"))
    if mode is Mode.PLAUSIBLE:
        if focus:
            return st.sampled_from(focus)
        if is_id:
            return st.one_of(_msgids(_POOLS[1][2]), st.uuids().map(lambda value: value.hex))
        return st.text("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", min_size=1, max_size=12)
    branches: list[st.SearchStrategy[str]] = []
    if wild:
        branches.append(st.sampled_from(wild))
    if is_id:
        branches.append(_ids())
    branches += [
        st.sampled_from(_WRONG_CODES + REGIONS[:2] + INSTITUTIONS[:2] + CERTNOS[:2]),
        st.just(""),
        st.text(max_size=20),
    ]
    branches.append(_with_control(st.one_of(branches)))
    if mode is Mode.WILD:
        branches.append(_long_text())
    return st.one_of(branches)


def _integers(field: FieldDescriptor, mode: Mode) -> st.SearchStrategy[int]:
    low, high = _INT_BOUNDS[field.type]
    if mode is Mode.PLAUSIBLE:
        return st.integers(max(low, 1), min(high, 100_000 if field.name.endswith("_fen") else 50))
    edges = [
        value for value in (0, 1, -1, low, high, low + 1, high - 1, 10**12, -(10**12)) if low <= value <= high
    ]
    branches = [
        st.sampled_from(edges),
        st.integers(max(low, -1000), min(high, 100_000)),
        st.integers(low, high),
    ]
    if field.name.endswith("_fen"):
        branches.insert(0, st.integers(max(low, 0), min(high, 10**9)))
    return st.one_of(branches)


def _enum(field: FieldDescriptor, mode: Mode) -> st.SearchStrategy[int]:
    numbers = [value.number for value in field.enum_type.values]
    if mode is Mode.PLAUSIBLE:
        return st.sampled_from([number for number in numbers if number] or numbers)
    if field.enum_type.is_closed:
        return st.sampled_from(numbers)
    return st.one_of(st.sampled_from(numbers), st.sampled_from([max(numbers) + 1, 99, 2**31 - 1, -1]))


def _date_message(cls: type[Message], mode: Mode) -> st.SearchStrategy[Message]:
    """A ``google.type.Date``: real days, and months 0–13, days 0–32, years 0 and beyond 9999."""
    samples = st.sampled_from([(2022, 7, 1), (2026, 10, 31), (2026, 11, 25), (2022, 1, 1)]).map(
        lambda ymd: cls(year=ymd[0], month=ymd[1], day=ymd[2])
    )
    if mode is Mode.PLAUSIBLE:
        return samples
    real = st.dates(date(1900, 1, 1), date(2100, 12, 31)).map(
        lambda d: cls(year=d.year, month=d.month, day=d.day)
    )
    broken = st.builds(
        cls,
        year=st.sampled_from([0, 1, 2022, 2026, 9999, 10000, -1, 2**31 - 1]),
        month=st.integers(-1, 13),
        day=st.integers(-1, 32),
    )
    return st.one_of(samples, real, broken)


def _timestamp_message(cls: type[Message], mode: Mode) -> st.SearchStrategy[Message]:
    """A ``google.protobuf.Timestamp``: real instants, and seconds or nanos outside its range."""
    real = st.integers(1_640_995_200, 1_798_761_600).map(lambda s: cls(seconds=s))
    if mode is Mode.PLAUSIBLE:
        return real
    broken = st.builds(
        cls,
        seconds=st.sampled_from([0, -1, -62_135_596_801, 253_402_300_800, 2**63 - 1, -(2**63)]),
        nanos=st.sampled_from([0, -1, 999_999_999, 1_000_000_000, 2**31 - 1]),
    )
    return st.one_of(real, broken)


_CSV_SAMPLES = [SAMPLES / "institutions.csv", *sorted((SAMPLES / "catalogues").glob("*.csv"))]


def _csv_sample(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _render_csv(header: list[str], rows: list[dict[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _csv_from(path: Path) -> st.SearchStrategy[bytes]:
    """A sample CSV's header over 0–4 of its rows, any cell of which may be replaced by a fuzzed value."""
    header, rows = _csv_sample(path)
    cells = {column: string_strategy(column, Mode.SMALL) for column in header}
    row = st.builds(
        lambda original, changed: {**original, **changed},
        st.sampled_from(rows),
        st.fixed_dictionaries({}, optional=cells),
    )
    return st.lists(row, max_size=4).map(lambda chosen: _render_csv(header, chosen))


def _bytes(mode: Mode) -> st.SearchStrategy[bytes]:
    """Bytes: sample policy documents and CSV files (whole, cut, or with fuzzed cells), junk, nothing."""
    documents = [path.read_bytes() for path in [*sorted((SAMPLES / "policies").iterdir()), *_CSV_SAMPLES]]
    if mode is Mode.PLAUSIBLE:
        return st.sampled_from(documents)
    cut = st.tuples(st.sampled_from(documents), st.integers(0, 400)).map(lambda pair: pair[0][: pair[1]])
    fuzzed = st.one_of([_csv_from(path) for path in _CSV_SAMPLES])
    return st.one_of(st.sampled_from(documents), fuzzed, cut, st.binary(max_size=64), st.just(b""))


def _scalar(field: FieldDescriptor, mode: Mode) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return string_strategy(field.name, mode)
    if kind == FieldDescriptor.TYPE_BYTES:
        return _bytes(mode)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_ENUM:
        return _enum(field, mode)
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(
            allow_nan=mode is not Mode.PLAUSIBLE, allow_infinity=mode is not Mode.PLAUSIBLE, width=32
        )
    return _integers(field, mode)


def _single(field: FieldDescriptor, depth: int, mode: Mode) -> st.SearchStrategy[Any] | None:
    """One value of ``field`` (None: too deep to build its message)."""
    if field.type != FieldDescriptor.TYPE_MESSAGE:
        return _scalar(field, mode)
    if depth >= MAX_DEPTH:
        return None
    return message_strategy(field.message_type, depth + 1, mode)


def _repeated(field: FieldDescriptor, depth: int, mode: Mode) -> st.SearchStrategy[Any] | None:
    """A list of 0–3 values, or (near the top, for one request in a while) thousands of one value."""
    element = _single(field, depth, Mode.SMALL if mode is Mode.WILD else mode)
    if element is None:
        return None
    if mode is Mode.PLAUSIBLE:
        return st.lists(element, min_size=1, max_size=3)
    lists = st.lists(element, max_size=3)
    if depth > 1 or mode is not Mode.WILD:
        return lists
    huge = st.tuples(element, st.integers(500, HUGE_LIST)).map(lambda pair: [pair[0]] * pair[1])
    return st.one_of(lists, huge)


def _map(field: FieldDescriptor, depth: int, mode: Mode) -> st.SearchStrategy[Any] | None:
    entry = field.message_type
    element_mode = Mode.SMALL if mode is Mode.WILD else mode
    key = _single(entry.fields_by_name["key"], depth, element_mode)
    value = _single(entry.fields_by_name["value"], depth, element_mode)
    if key is None or value is None:
        return None
    return st.dictionaries(key, value, max_size=3)


def _field_strategy(field: FieldDescriptor, depth: int, mode: Mode) -> st.SearchStrategy[Any] | None:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        return _map(field, depth, mode)
    if field.is_repeated:
        return _repeated(field, depth, mode)
    return _single(field, depth, mode)


def set_field(message: Message, field: FieldDescriptor, value: Any) -> None:
    """Put a drawn value into ``message`` whatever the field's kind."""
    target = getattr(message, field.name) if field.is_repeated else None
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value_field = field.message_type.fields_by_name["value"]
        for key, item in value.items():
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                target[key].CopyFrom(item)
            else:
                target[key] = item
    elif field.is_repeated:
        target.extend(value)
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        getattr(message, field.name).CopyFrom(value)
    else:
        setattr(message, field.name, value)


def _build(cls: type[Message], chosen: dict[FieldDescriptor, Any]) -> Message:
    message = cls()
    for field, value in chosen.items():
        set_field(message, field, value)
    return message


@cache
def message_strategy(
    descriptor: Descriptor, depth: int = 0, mode: Mode = Mode.WILD
) -> st.SearchStrategy[Message]:
    """Messages of ``descriptor``'s type: any field may be missing, at most one member per oneof set.

    A plausible message sets every field and one member of each oneof.
    """
    cls = GetMessageClass(descriptor)
    if descriptor.full_name == "google.type.Date":
        return _date_message(cls, mode)
    if descriptor.full_name == "google.protobuf.Timestamp":
        return _timestamp_message(cls, mode)
    plain: dict[FieldDescriptor, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.containing_oneof is None or field.containing_oneof.name.startswith("_"):
            strategy = _field_strategy(field, depth, mode)
            if strategy is not None:
                plain[field] = strategy
    oneofs = []
    for oneof in descriptor.oneofs:
        if oneof.name.startswith("_"):
            continue
        members = [
            st.tuples(st.just(field), strategy)
            for field in oneof.fields
            if (strategy := _field_strategy(field, depth, mode)) is not None
        ]
        oneofs.append(st.one_of(*members) if mode is Mode.PLAUSIBLE else st.one_of(st.none(), *members))
    fields = (
        st.fixed_dictionaries(plain) if mode is Mode.PLAUSIBLE else st.fixed_dictionaries({}, optional=plain)
    )
    return st.builds(
        lambda values, chosen: _build(cls, {**values, **dict(c for c in chosen if c is not None)}),
        fields,
        st.tuples(*oneofs),
    )


def request_strategy(descriptor: Descriptor) -> st.SearchStrategy[Message]:
    """A request: wild (anything, fields missing) or plausible (everything set to right-looking values)."""
    return st.one_of(message_strategy(descriptor), message_strategy(descriptor, 0, Mode.PLAUSIBLE))


def stream_strategy(descriptor: Descriptor) -> st.SearchStrategy[list[Message]]:
    """A client stream of ``descriptor`` messages: any 0–4 messages, or a header then 0–3 chunks.

    The second shape is what an import sends (a oneof of a header message and a bytes
    chunk); the first also covers a missing, repeated or late header.
    """
    cls = GetMessageClass(descriptor)
    anything = st.lists(message_strategy(descriptor), max_size=4)
    members = [field for oneof in descriptor.oneofs for field in oneof.fields]
    header = next((f for f in members if f.type == FieldDescriptor.TYPE_MESSAGE), None)
    chunk = next((f for f in members if f.type == FieldDescriptor.TYPE_BYTES), None)
    if header is None or chunk is None:
        return anything
    shaped = st.builds(
        lambda head, chunks: [cls(**{header.name: head}), *(cls(**{chunk.name: c}) for c in chunks)],
        request_strategy(header.message_type),
        st.lists(_bytes(Mode.SMALL), min_size=0, max_size=3),
    )
    return st.one_of(shaped, anything)
