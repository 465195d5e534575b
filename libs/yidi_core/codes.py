"""Validators for every identifier format in ``domain/codes.md``.

Nodes interoperate only because they all speak the same codes, so each identifier is
checked once at the edge (RPC or import) and a malformed one is refused with
``INVALID_CODE`` and a field violation naming it. Validators return the cleaned string so
callers keep exactly what was checked. Messages say what the shape must be and what was
given, but never echo a full personal ID number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from enum import StrEnum
from types import MappingProxyType

from yidi_core.errors import DomainError, invalid

NATIONAL_REGION = "000000"
"""The national node's own region code (project value; the national platform's is not public)."""

# The 00 prefix names no province: it is reserved for the national node's 000000.
_REGION_PART = r"(?:000000|(?!00)[0-9]{6})"
_LOCAL_REGION_PART = r"(?!00)[0-9]{6}"

_REGION = re.compile(_REGION_PART)
_INSTITUTION = re.compile(rf"[HP]{_LOCAL_REGION_PART}[0-9]{{5}}")
_DRUG = re.compile(r"[XZ][A-Z0-9]{22}")
_CONSUMABLE = re.compile(r"C[0-9]{19}")
_SERVICE_ITEM = re.compile(r"[0-9]{9,15}")
_ITEM = re.compile(rf"{_DRUG.pattern}|{_CONSUMABLE.pattern}|{_SERVICE_ITEM.pattern}")
_CHRONIC = re.compile(r"M[0-9]{5}")
_DIAGNOSIS = re.compile(r"[A-Z][0-9]{2}(?:\.[A-Z0-9]{1,4})?")
_ID_NUMBER = re.compile(r"[0-9]{17}[0-9X]")
_MSGID = re.compile(rf"(?:[HP]{_LOCAL_REGION_PART}[0-9]{{5}}|{_REGION_PART}0{{6}})[0-9]{{18}}")
_RECORD_ID = re.compile(rf"{_REGION_PART}[A-Za-z0-9]{{24}}")

_REGION_SHAPE = "6 digits (a region code; the 00 prefix is reserved for the national node 000000)"
_INSTITUTION_SHAPE = "H or P followed by 11 digits, the first 6 being the institution's region code"
_DRUG_SHAPE = "X or Z followed by 22 uppercase letters or digits (23 characters)"
_CONSUMABLE_SHAPE = "C followed by 19 digits (20 characters)"
_SERVICE_ITEM_SHAPE = "9 to 15 digits"
_ITEM_SHAPE = (
    "a drug code (X or Z + 22 uppercase letters/digits), a consumable code (C + 19 digits) "
    "or a service item code (9 to 15 digits)"
)
_CHRONIC_SHAPE = "M followed by 5 digits"
_DIAGNOSIS_SHAPE = "an ICD-10 code: a letter, 2 digits, optionally '.' and 1 to 4 letters or digits"
_ID_SHAPE = "18 characters: 17 digits and a check digit (0-9 or X)"
_MSGID_SHAPE = (
    "30 characters: the sender's 12-character code (H or P + 11 digits, or a 6-digit region "
    "padded with 0), a yyyyMMddHHmmss timestamp and a 4-digit sequence"
)
_RECORD_ID_SHAPE = "30 letters or digits starting with the issuing node's 6-digit region code"

_SHOWN_MAX = 40
_ID_WEIGHTS = tuple(pow(2, 17 - position, 11) for position in range(17))
_ID_CHECK_DIGITS = "10X98765432"
_EARLIEST_BIRTH = date(1900, 1, 1)
_INSTITUTION_TYPES = {"H": "1", "P": "2"}
PHARMACY_PREFIX = "P"
"""A designated retail pharmacy's code (定点零售药店) starts with it; a hospital's with ``H``."""


class ItemKind(StrEnum):
    """Which national catalogue an item code belongs to; classification differs per kind."""

    DRUG = "drug"
    CONSUMABLE = "consumable"
    SERVICE = "service"


# An item code's first character names its kind.
_ITEM_KINDS: Mapping[str, ItemKind] = {
    "X": ItemKind.DRUG,
    "Z": ItemKind.DRUG,
    "C": ItemKind.CONSUMABLE,
    **{digit: ItemKind.SERVICE for digit in "0123456789"},
}


PILOT_CHRONIC_DISEASES: Mapping[str, str] = MappingProxyType(
    {
        "M03900": "hypertension",
        "M01600": "diabetes",
        "M00500": "outpatient radio-/chemotherapy for malignant tumours",
        "M07800": "dialysis for uremia",
        "M08300": "anti-rejection therapy after organ transplant",
    }
)
"""The five nationally piloted chronic outpatient diseases (family codes) by English name."""


def _shown(text: str) -> str:
    """Quote a rejected value, cut short so a huge input cannot flood messages and logs."""
    if len(text) > _SHOWN_MAX:
        return f"{text[:_SHOWN_MAX]!r}... ({len(text)} characters)"
    return repr(text)


def _text(value: object, field: str, shape: str) -> str:
    """The value without surrounding spaces; a non-string is refused before any pattern runs."""
    if not isinstance(value, str):
        raise invalid("INVALID_CODE", field, f"must be {shape}, got a value of type {type(value).__name__}")
    return value.strip(" ")


def _refused(field: str, shape: str, shown: str) -> DomainError:
    return invalid("INVALID_CODE", field, f"must be {shape}, got {shown}")


def _matched(value: object, field: str, pattern: re.Pattern[str], shape: str) -> str:
    text = _text(value, field, shape)
    if pattern.fullmatch(text) is None:
        raise _refused(field, shape, _shown(text))
    return text


def check_region(value: object, field: str = "admdvs") -> str:
    """A region code (医保区划): province ``PP0000``, city ``PPCC00``, county, or national 000000."""
    return _matched(value, field, _REGION, _REGION_SHAPE)


def province_of(region: str, field: str = "admdvs") -> str:
    """The province a region belongs to; the national node belongs to none, so routing refuses it."""
    code = check_region(region, field)
    if code == NATIONAL_REGION:
        raise invalid(
            "INVALID_CODE",
            field,
            "must be a province, city or county region code, got the national node's '000000', "
            "which belongs to no province",
        )
    return code[:2] + "0000"


def check_institution(value: object, field: str = "fixmedins_code") -> str:
    """A designated institution code (定点医药机构编码), e.g. ``H33040100011``."""
    return _matched(value, field, _INSTITUTION, _INSTITUTION_SHAPE)


def institution_region(code: str, field: str = "fixmedins_code") -> str:
    """The region embedded in an institution code: where it is designated."""
    return check_institution(code, field)[1:7]


def institution_type(code: str, field: str = "fixmedins_code") -> str:
    """The ``fixmedins_type`` dictionary code: ``1`` medical institution (H), ``2`` pharmacy (P)."""
    return _INSTITUTION_TYPES[check_institution(code, field)[0]]


def check_drug(value: object, field: str = "code") -> str:
    """A national drug code (医保药品分类与代码), e.g. ``XA10BFA022A001010100001``."""
    return _matched(value, field, _DRUG, _DRUG_SHAPE)


def check_consumable(value: object, field: str = "code") -> str:
    """A national medical consumable code (医用耗材编码), e.g. ``C0203010340000000001``."""
    return _matched(value, field, _CONSUMABLE, _CONSUMABLE_SHAPE)


def check_service_item(value: object, field: str = "code") -> str:
    """A medical service item code: national code plus local extension (project rule)."""
    return _matched(value, field, _SERVICE_ITEM, _SERVICE_ITEM_SHAPE)


def plain_item_codes(values: Sequence[object]) -> bool:
    """Whether every value is a fee item code :func:`check_item_code` accepts exactly as written
    (a bill's codes checked at C speed; any other is checked on its own to name what is wrong)."""
    return not set(map(type, values)) - {str} and all(map(_ITEM.fullmatch, values))  # type: ignore[arg-type]


def check_item_code(value: object, field: str = "code") -> tuple[str, ItemKind]:
    """Any fee item code with its kind; the first character picks the kind so errors are specific."""
    text = _text(value, field, _ITEM_SHAPE)
    # One match accepts a bill line's code; the per-kind checks below only name what is wrong.
    if _ITEM.fullmatch(text):
        return text, _ITEM_KINDS[text[0]]
    head = text[:1]
    if head in ("X", "Z"):
        return check_drug(text, field), ItemKind.DRUG
    if head == "C":
        return check_consumable(text, field), ItemKind.CONSUMABLE
    if "0" <= head <= "9":
        return check_service_item(text, field), ItemKind.SERVICE
    raise _refused(field, _ITEM_SHAPE, _shown(text))


def check_chronic_disease(value: object, field: str = "chronic_disease") -> str:
    """A chronic outpatient disease code (门诊慢特病病种代码), family or provincial sub-code."""
    return _matched(value, field, _CHRONIC, _CHRONIC_SHAPE)


def chronic_family(code: str, field: str = "chronic_disease") -> str:
    """``M`` and the first four digits: the part a family listing is matched on."""
    return check_chronic_disease(code, field)[:5]


def chronic_matches(listed: str, code: str) -> bool:
    """Whether a region listing ``listed`` accepts ``code``.

    A listed code ending in 0 is a family and accepts its sub-codes (M00500 accepts M00503);
    any other listed code is a sub-code and accepts only itself.
    """
    listed = check_chronic_disease(listed)
    code = check_chronic_disease(code)
    return listed == code or (listed.endswith("0") and chronic_family(code) == listed[:5])


def is_pilot_chronic_disease(code: str) -> bool:
    """Whether ``code`` is one of the five nationally piloted chronic diseases or a sub-code of one."""
    return any(chronic_matches(family, code) for family in PILOT_CHRONIC_DISEASES)


def check_diagnosis(value: object, field: str = "diagnoses") -> str:
    """An ICD-10 (医保版) diagnosis code such as ``E11.900``, normalised to uppercase."""
    text = _text(value, field, _DIAGNOSIS_SHAPE).upper()
    if _DIAGNOSIS.fullmatch(text) is None:
        raise _refused(field, _DIAGNOSIS_SHAPE, _shown(text))
    return text


def mask_id_number(value: str) -> str:
    """Hide an ID number for logs and messages: keep the first 6 and last 4 only if 8 stay hidden."""
    if len(value) < 18:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def _shown_id(text: str) -> str:
    if len(text) > _SHOWN_MAX:
        return f"a value of {len(text)} characters"
    return f"{mask_id_number(text)!r} ({len(text)} characters)"


def _id_birth_date(text: str) -> date | None:
    try:
        born = date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        return None
    return born if born >= _EARLIEST_BIRTH else None


def _checked_id(value: object, field: str) -> tuple[str, date]:
    text = _text(value, field, _ID_SHAPE).upper()
    if _ID_NUMBER.fullmatch(text) is None:
        raise _refused(field, _ID_SHAPE, _shown_id(text))
    born = _id_birth_date(text)
    if born is None:
        raise invalid(
            "INVALID_CODE",
            field,
            f"must have a real birth date on or after 1900-01-01 in digits 7-14, got {_shown_id(text)}",
        )
    total = sum(int(digit) * weight for digit, weight in zip(text[:17], _ID_WEIGHTS, strict=True))
    if text[17] != _ID_CHECK_DIGITS[total % 11]:
        raise invalid(
            "INVALID_CODE",
            field,
            f"must end in the ISO 7064 MOD 11-2 check digit of its first 17 digits, got {_shown_id(text)}",
        )
    return text, born


def check_id_number(value: object, field: str = "psn_cert_no") -> str:
    """A resident ID number (居民身份证), check digit normalised to uppercase ``X``.

    The check digit follows ISO 7064 MOD 11-2 and digits 7-14 must be a real birth date;
    messages show the number masked because it is personal data.
    """
    return _checked_id(value, field)[0]


def birth_date_of(id_number: str, field: str = "psn_cert_no") -> date:
    """The birth date encoded in a valid ID number (age-dependent rules need it)."""
    return _checked_id(id_number, field)[1]


def check_msgid(value: object, field: str = "request_id") -> str:
    """A message id (``msgid``): sender code, real send timestamp, 4-digit sequence."""
    text = _matched(value, field, _MSGID, _MSGID_SHAPE)
    stamp = text[12:26]
    try:
        datetime(
            int(stamp[0:4]),
            int(stamp[4:6]),
            int(stamp[6:8]),
            int(stamp[8:10]),
            int(stamp[10:12]),
            int(stamp[12:14]),
        )
    except ValueError:
        raise invalid(
            "INVALID_CODE",
            field,
            f"must carry a real yyyyMMddHHmmss timestamp in characters 13-26, got {_shown(text)}",
        ) from None
    return text


def msgid_sender(msgid: str, field: str = "request_id") -> str:
    """The 12-character sender code a message id starts with (institution or padded node region)."""
    return check_msgid(msgid, field)[:12]


def check_record_id(value: object, field: str) -> str:
    """A visit id (``mdtrt_id``) or settlement id (``setl_id``) issued by a node."""
    return _matched(value, field, _RECORD_ID, _RECORD_ID_SHAPE)
