"""The institution CSV format (ImportInstitutions, `yidi registry import`): parsing into drafts.

Rows are numbered as a spreadsheet shows them: the header is row 1, the first institution
row 2. Every bad cell becomes one field violation named ``row N, column NAME``; the list is
cut after :data:`MAX_VIOLATIONS` so the error still fits in a gRPC trailer.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from yidi_core.errors import DomainError, FieldViolation, combine, invalid
from yidi_runtime.text_checks import ensure_sound_file
from yidi_services.registry.institutions import InstitutionDraft, ServiceDraft

COLUMNS = (
    "fixmedins_code",
    "fixmedins_name",
    "type",
    "level",
    "admdvs",
    "address",
    "status",
    "accepts_cross_province",
    "accepts_in_province",
    "services",
)
MAX_VIOLATIONS = 100
_BOOLEANS = {"true": True, "false": False, "": False}


@dataclass(frozen=True)
class CsvRow:
    """One institution row with its number and the cells that could not be read (no draft: unusable row).

    A cell that cannot be read leaves a neutral value in the draft, so the rest of the row is
    still validated and the importer sees every problem of the file in one answer.
    """

    number: int
    draft: InstitutionDraft | None
    problems: tuple[DomainError, ...] = ()


def cell(number: int, column: str) -> str:
    """The field name of one cell in violations."""
    return f"row {number}, column {column}"


def capped(error: DomainError) -> DomainError:
    """At most :data:`MAX_VIOLATIONS` violations, the last saying how many were left out."""
    if len(error.violations) <= MAX_VIOLATIONS:
        return error
    kept = error.violations[: MAX_VIOLATIONS - 1]
    rest = len(error.violations) - len(kept)
    more = FieldViolation("rows", f"{rest} more bad cells not listed; fix the ones above and import again")
    return type(error)(error.reason_code, f"{len(error.violations)} bad cells", (*kept, more), error.metadata)


def _services(text: str, number: int) -> tuple[ServiceDraft, ...]:
    """``kind[:disease]@yyyy-mm-dd`` items separated by ';'."""
    drafts = []
    for item in filter(None, (part.strip() for part in text.split(";"))):
        kind_part, at, day = item.partition("@")
        if not at:
            raise invalid(
                "INVALID_ARGUMENT",
                cell(number, "services"),
                f"each service must be kind[:disease]@yyyy-mm-dd, got {item[:40]!r}",
            )
        kind, _, disease = kind_part.partition(":")
        drafts.append(ServiceDraft(kind.strip(), disease.strip(), day.strip()))
    return tuple(drafts)


def _boolean(text: str, number: int, column: str) -> bool:
    value = _BOOLEANS.get(text.strip().lower())
    if value is None:
        raise invalid("INVALID_ARGUMENT", cell(number, column), f"must be true or false, got {text[:20]!r}")
    return value


def _row(cells: dict[str, str], number: int) -> CsvRow:
    problems: list[DomainError] = []
    flags = {}
    for column in ("accepts_cross_province", "accepts_in_province"):
        try:
            flags[column] = _boolean(cells[column], number, column)
        except DomainError as error:
            problems.append(error)
            flags[column] = False
    try:
        services = _services(cells["services"], number)
    except DomainError as error:
        problems.append(error)
        services = ()
    draft = InstitutionDraft(
        code=cells["fixmedins_code"].strip(),
        name=cells["fixmedins_name"],
        type=cells["type"].strip().lower(),
        level=cells["level"].strip(),
        admdvs=cells["admdvs"].strip(),
        address=cells["address"],
        status=cells["status"].strip().lower(),
        services=services,
        accepts_cross_province=flags["accepts_cross_province"],
        accepts_in_province=flags["accepts_in_province"],
    )
    return CsvRow(number, draft, tuple(problems))


def _header(names: list[str]) -> None:
    cleaned = [name.strip() for name in names]
    missing = [column for column in COLUMNS if column not in cleaned]
    unknown = [name for name in cleaned if name not in COLUMNS]
    problems = [invalid("INVALID_ARGUMENT", cell(1, c), "is missing from the header") for c in missing]
    problems += [
        invalid("INVALID_ARGUMENT", cell(1, c[:40]), "is not a column of the format") for c in unknown
    ]
    error = combine(problems)
    if error is not None:
        raise error


def parse(data: bytes) -> list[CsvRow]:
    """Every row of a CSV file as a draft with its unreadable cells; a bad header or encoding is refused."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise invalid(
            "INVALID_ARGUMENT", "csv_chunk", f"must be UTF-8 text ({error.reason} at byte {error.start})"
        ) from None
    ensure_sound_file(text, "csv_chunk")
    records = csv.reader(io.StringIO(text, newline=""))
    header = next(records, None)
    if header is None:
        raise invalid("INVALID_ARGUMENT", "csv_chunk", "is empty: a header line is required")
    _header(header)
    names = [name.strip() for name in header]
    rows: list[CsvRow] = []
    for number, record in enumerate(records, start=2):
        if not record:
            continue
        if len(record) != len(names):
            problem = invalid(
                "INVALID_ARGUMENT", f"row {number}", f"has {len(record)} cells, the header has {len(names)}"
            )
            rows.append(CsvRow(number, None, (problem,)))
            continue
        rows.append(_row(dict(zip(names, record, strict=True)), number))
    return rows
