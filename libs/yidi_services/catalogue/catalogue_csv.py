"""The catalogue CSV (examples/data/README.md): validated whole, every bad cell reported.

An import is all-or-nothing, so the file is read completely before anything is stored and
each bad cell becomes one field violation ``rows[i].column`` (``i`` counts data rows from
0) whose description names the file line, the column and the reason.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal

from yidi_core.codes import ItemKind, check_item_code
from yidi_core.dictionaries import NATIONAL
from yidi_core.errors import DomainError, FieldViolation, invalid
from yidi_core.money import ZERO, parse_decimal, parse_ratio
from yidi_runtime.text_checks import ensure_sound_file
from yidi_services.catalogue.items import CLASS_BY_LEVEL, LIST_SEPARATOR, CatalogueRow

COLUMNS = (
    "code",
    "name",
    "kind",
    "chrgitm_lv",
    "selfpay_prop",
    "pric_uplmt_amt",
    "restriction_med_types",
    "restriction_diagnosis_prefixes",
    "valid_from",
    "valid_to",
)
REQUIRED_COLUMNS = ("code", "name", "kind", "chrgitm_lv")
# Status details travel in a trailer of bounded size: list the first problems, count the rest.
MAX_VIOLATIONS = 30
# The start of an ICD-10 code: a letter, then as much of "99.XXXX" as the region restricts on.
_KINDS = {kind.value: kind for kind in ItemKind}
_DIAGNOSIS_PREFIX = re.compile(r"[A-Z](?:[0-9](?:[0-9](?:\.[A-Z0-9]{0,4})?)?)?")


class _BadCell(Exception):
    """One cell's problem, collected rather than raised to the caller."""

    def __init__(self, reason_code: str, description: str) -> None:
        super().__init__(description)
        self.reason_code = reason_code
        self.description = description


def _checked(parse: Callable[[str, str], object], value: str, field: str) -> object:
    """Run a core validator; its refusal becomes this cell's problem."""
    try:
        return parse(value, field)
    except DomainError as error:
        raise _BadCell(error.reason_code, error.violations[0].description) from None


def _date(value: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _BadCell("INVALID_ARGUMENT", f"must be a date yyyy-mm-dd, got {value!r}") from None


def _med_types(value: str, field: str) -> tuple[str, ...]:
    return tuple(
        NATIONAL.check("med_type", part.strip(), field).code
        for part in value.split(LIST_SEPARATOR)
        if part.strip()
    )


def _diagnosis_prefixes(value: str) -> tuple[str, ...]:
    prefixes = tuple(part.strip().upper() for part in value.split(LIST_SEPARATOR) if part.strip())
    for prefix in prefixes:
        if _DIAGNOSIS_PREFIX.fullmatch(prefix) is None:
            raise _BadCell("INVALID_CODE", f"{prefix!r} is not the start of an ICD-10 code such as E11")
    return prefixes


def _row(cells: dict[str, str], field: str, problems: list[tuple[str, str, str]]) -> CatalogueRow | None:
    """One data row as a :class:`CatalogueRow`, or None with its bad cells added to ``problems``."""
    values: dict[str, object] = {}

    def cell(column: str, parse: Callable[[str], object]) -> None:
        try:
            values[column] = parse(cells.get(column) or "")
        except _BadCell as bad:
            problems.append((bad.reason_code, column, bad.description))

    def required(text: str) -> str:
        if not text:
            raise _BadCell("INVALID_ARGUMENT", "is required")
        return text

    cell("code", lambda text: _checked(check_item_code, required(text), f"{field}.code"))
    cell("name", required)
    cell("kind", lambda text: _KINDS.get(required(text)) or _bad_kind(text))
    cell("chrgitm_lv", lambda text: CLASS_BY_LEVEL.get(text) or _bad_level(text))
    cell("selfpay_prop", lambda text: _checked(parse_ratio, text, field) if text else ZERO)
    cell("pric_uplmt_amt", lambda text: _ceiling(text, field) if text else None)
    cell("restriction_med_types", lambda text: _checked(_med_types, text, field))
    cell("restriction_diagnosis_prefixes", _diagnosis_prefixes)
    cell("valid_from", _date)
    cell("valid_to", _date)
    if problems:
        return None
    code, code_kind = values["code"]  # type: ignore[misc]
    row = CatalogueRow(
        code=code,
        name=values["name"],  # type: ignore[arg-type]
        kind=values["kind"],  # type: ignore[arg-type]
        item_class=values["chrgitm_lv"],  # type: ignore[arg-type]
        selfpay_ratio=values["selfpay_prop"],  # type: ignore[arg-type]
        price_ceiling=values["pric_uplmt_amt"],  # type: ignore[arg-type]
        med_types=values["restriction_med_types"],  # type: ignore[arg-type]
        diagnosis_prefixes=values["restriction_diagnosis_prefixes"],  # type: ignore[arg-type]
        valid_from=values["valid_from"],  # type: ignore[arg-type]
        valid_to=values["valid_to"],  # type: ignore[arg-type]
    )
    if row.kind is not code_kind:
        problems.append(
            ("INVALID_ARGUMENT", "kind", f"the code is a {code_kind.value} code, not {row.kind.value}")
        )
    if row.selfpay_ratio and row.item_class.chrgitm_lv != "02":
        problems.append(
            ("INVALID_ARGUMENT", "selfpay_prop", "only class B (02) items have a first self-pay ratio")
        )
    if row.valid_from and row.valid_to and row.valid_to < row.valid_from:
        problems.append(("INVALID_ARGUMENT", "valid_to", "must not be before valid_from"))
    return None if problems else row


def _bad_kind(text: str) -> ItemKind:
    raise _BadCell("INVALID_ARGUMENT", f"must be drug, service or consumable, got {text!r}")


def _bad_level(text: str) -> object:
    raise _BadCell("INVALID_CODE", f"must be 01 (class A), 02 (class B) or 03 (class C), got {text!r}")


def _ceiling(text: str, field: str) -> Decimal:
    ceiling = _checked(lambda value, where: parse_decimal(value, where, max_places=6), text, field)
    if ceiling == ZERO:
        raise _BadCell("INVALID_ARGUMENT", "must be positive (leave it empty for no ceiling)")
    return ceiling  # type: ignore[return-value]


def _refusal(violations: list[tuple[str, FieldViolation]], total: int) -> DomainError:
    listed = [violation for _, violation in violations[:MAX_VIOLATIONS]]
    if total > len(listed):
        listed.append(FieldViolation("rows", f"... and {total - len(listed)} more bad cells not listed"))
    first = violations[0][1]
    return DomainError(
        violations[0][0],
        f"catalogue import refused, nothing stored: {total} bad cell(s); first: {first.field}: {first.description}",
        tuple(listed),
    )


def _text(content: bytes) -> str:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise invalid(
            "INVALID_ARGUMENT", "csv_chunk", f"the file is not UTF-8 (byte {error.start} is not)"
        ) from None
    ensure_sound_file(text, "csv_chunk")
    return text


def parse_catalogue_csv(content: bytes) -> tuple[CatalogueRow, ...]:
    """Every row of the file, or one refusal listing each bad cell (nothing is partially accepted)."""
    reader = csv.DictReader(io.StringIO(_text(content), newline=""))
    header = [name.strip() for name in reader.fieldnames or ()]
    reader.fieldnames = header
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    unknown = [name for name in header if name not in COLUMNS]
    if missing or unknown:
        problems = [f"missing column {name}" for name in missing] + [
            f"unknown column {name!r}" for name in unknown
        ]
        raise invalid("INVALID_ARGUMENT", "header", "; ".join(problems) + f" (columns: {', '.join(COLUMNS)})")
    rows: list[CatalogueRow] = []
    violations: list[tuple[str, FieldViolation]] = []
    total = 0
    first_line: dict[str, int] = {}
    for index, cells in enumerate(reader):
        field = f"rows[{index}]"
        problems: list[tuple[str, str, str]] = []
        if None in cells:
            problems.append(("INVALID_ARGUMENT", "code", f"has more cells than the header's {len(header)}"))
        row = None if problems else _row({k: (v or "").strip() for k, v in cells.items()}, field, problems)
        if row is not None and row.code in first_line:
            problems.append(
                ("INVALID_ARGUMENT", "code", f"{row.code} already listed on line {first_line[row.code]}")
            )
        elif row is not None:
            first_line[row.code] = reader.line_num
            rows.append(row)
        total += len(problems)
        violations.extend(
            (reason, FieldViolation(f"{field}.{column}", f"line {reader.line_num}, column {column}: {text}"))
            for reason, column, text in problems
            if len(violations) < MAX_VIOLATIONS
        )
    if violations:
        raise _refusal(violations, total)
    if not rows:
        raise invalid("INVALID_ARGUMENT", "rows", "the file has no data rows")
    return tuple(rows)
