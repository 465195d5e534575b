"""National dictionaries as data, with room for provincial extensions.

``domain/codes.md`` asks for dictionaries kept as rows (code, names, region scope,
validity) rather than constants: provinces add local codes (e.g. ``med_type`` ``99xx``)
and national tables change over time, so a lookup names the region and date it asks for.
An extension may only add codes; it can never give a national code a second meaning.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from types import MappingProxyType

from yidi_core.codes import NATIONAL_REGION, check_region
from yidi_core.errors import DomainError, invalid

_REGION = re.compile(r"000000|(?!00)[0-9]{6}")
_KNOWN_SHOWN = 12
_GROUPS = ("employed", "retired", "resident")
_PSN_TYPE = re.compile(r"1[1-5][0-9]{2}")
_PSN_TYPE_GROUPS = {"11": "employed", "12": "retired", "13": "retired", "14": "resident", "15": "resident"}


def _scope_digits(scope: str) -> int:
    """How many leading digits a region must share with a scope: 0 national, 2, 4 or 6."""
    if scope == NATIONAL_REGION:
        return 0
    if scope.endswith("0000"):
        return 2
    if scope.endswith("00"):
        return 4
    return 6


def _preference(entry: Entry) -> tuple[date, int]:
    """Later rows first, then narrower scopes: how a date-less lookup picks among rows."""
    return entry.valid_from or date.min, _scope_digits(entry.region)


@dataclass(frozen=True, slots=True)
class Entry:
    """One dictionary row: a code, its names, where it applies and when (dates inclusive).

    ``region`` is ``000000`` for a national row, else the province, city or county the
    row is scoped to; ``attributes`` carry the facts the core derives from a code.
    """

    dictionary: str
    code: str
    name_zh: str
    name_en: str
    region: str = NATIONAL_REGION
    valid_from: date | None = None
    valid_to: date | None = None
    attributes: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if _REGION.fullmatch(self.region) is None:
            raise ValueError(
                f"{self.dictionary} {self.code!r}: region scope must be 000000 or a 6-digit region code, got {self.region!r}"
            )
        if self.valid_from is not None and self.valid_to is not None and self.valid_from > self.valid_to:
            raise ValueError(f"{self.dictionary} {self.code!r}: valid_from {self.valid_from} after valid_to")
        object.__setattr__(self, "attributes", MappingProxyType(dict(self.attributes)))

    def covers(self, region: str) -> bool:
        """Whether a query for ``region`` sees this row: national, same province, city or county."""
        significant = _scope_digits(self.region)
        return region[:significant] == self.region[:significant]

    def valid_on(self, on: date | None) -> bool:
        """Whether the row is in force on ``on`` (``None`` ignores validity)."""
        if on is None:
            return True
        return (self.valid_from is None or self.valid_from <= on) and (
            self.valid_to is None or on <= self.valid_to
        )

    def overlaps(self, other: Entry) -> bool:
        """Whether both rows could answer one query: same code, nested scopes, shared days."""
        return (
            (self.dictionary, self.code) == (other.dictionary, other.code)
            and (self.covers(other.region) or other.covers(self.region))
            and (self.valid_from or date.min) <= (other.valid_to or date.max)
            and (other.valid_from or date.min) <= (self.valid_to or date.max)
        )


class Dictionaries:
    """An immutable set of dictionary rows; no two rows may answer the same query."""

    __slots__ = ("_by_code", "_by_dictionary", "_entries")

    def __init__(self, entries: Iterable[Entry]) -> None:
        rows = tuple(entries)
        by_dictionary: dict[str, list[Entry]] = {}
        for row in rows:
            same = by_dictionary.setdefault(row.dictionary, [])
            clash = next((earlier for earlier in same if earlier.overlaps(row)), None)
            if clash is not None:
                raise ValueError(
                    f"{row.dictionary} code {row.code!r} scoped to {row.region} overlaps the row scoped to "
                    f"{clash.region} in scope and validity: an extension adds codes, it cannot redefine one"
                )
            same.append(row)
        self._entries = rows
        self._by_dictionary: Mapping[str, tuple[Entry, ...]] = MappingProxyType(
            {name: tuple(same) for name, same in by_dictionary.items()}
        )
        by_code: dict[tuple[str, str], list[Entry]] = {}
        for row in rows:
            by_code.setdefault((row.dictionary, row.code), []).append(row)
        # Settlement looks codes up per request: index them rather than scan a dictionary each time.
        self._by_code: Mapping[tuple[str, str], tuple[Entry, ...]] = MappingProxyType(
            {key: tuple(same) for key, same in by_code.items()}
        )

    @classmethod
    def national(cls) -> Dictionaries:
        """The national rows the project uses (``domain/codes.md``)."""
        return cls(_NATIONAL_ROWS)

    @property
    def entries(self) -> tuple[Entry, ...]:
        """Every row, national and extension, in the order given."""
        return self._entries

    def extended(self, entries: Iterable[Entry]) -> Dictionaries:
        """A new collection with provincial extension rows added; a clash raises ValueError."""
        return Dictionaries((*self._entries, *entries))

    def _rows(self, dictionary: str, region: str, on: date | None, code: str | None = None) -> list[Entry]:
        if dictionary not in self._by_dictionary:
            raise ValueError(f"unknown dictionary {dictionary!r}")
        if region != NATIONAL_REGION:
            region = check_region(region)
        candidates = (
            self._by_dictionary[dictionary] if code is None else self._by_code.get((dictionary, code), ())
        )
        return [row for row in candidates if row.covers(region) and row.valid_on(on)]

    def lookup(
        self, dictionary: str, code: str, *, region: str = NATIONAL_REGION, on: date | None = None
    ) -> Entry | None:
        """The row for ``code`` seen from ``region`` on ``on``, or None.

        With ``on`` given at most one row applies; without it the latest, narrowest row wins.
        """
        return _lookup(self, dictionary, code, region, on)

    def check(
        self,
        dictionary: str,
        code: object,
        field: str,
        *,
        region: str = NATIONAL_REGION,
        on: date | None = None,
    ) -> Entry:
        """Like :meth:`lookup`, but an unknown code is refused with ``INVALID_CODE`` on ``field``."""
        entry = (
            self.lookup(dictionary, code.strip(" "), region=region, on=on) if isinstance(code, str) else None
        )
        if entry is None:
            raise self._unknown(dictionary, code, field, region, on)
        return entry

    def _unknown(
        self, dictionary: str, code: object, field: str, region: str, on: date | None
    ) -> DomainError:
        known = self.codes(dictionary, region=region, on=on)
        listed = ", ".join(known[:_KNOWN_SHOWN])
        if len(known) > _KNOWN_SHOWN:
            listed += f", ... ({len(known) - _KNOWN_SHOWN} more)"
        given = repr(code[:40]) if isinstance(code, str) else f"a value of type {type(code).__name__}"
        where = "" if region == NATIONAL_REGION else f" in region {region}"
        when = "" if on is None else f" on {on.isoformat()}"
        return invalid(
            "INVALID_CODE",
            field,
            f"{given} is not a {dictionary} code{where}{when}; known: {listed or 'none'}",
        )

    def codes(
        self, dictionary: str, *, region: str = NATIONAL_REGION, on: date | None = None
    ) -> tuple[str, ...]:
        """The sorted codes of ``dictionary`` in force for ``region`` on ``on``."""
        return tuple(sorted({row.code for row in self._rows(dictionary, region, on)}))


@lru_cache(maxsize=4096)
def _lookup(
    dictionaries: Dictionaries, dictionary: str, code: str, region: str, on: date | None
) -> Entry | None:
    """Every case looks up the same few codes, and a collection never changes: remember answers."""
    return max(dictionaries._rows(dictionary, region, on, code), key=_preference, default=None)


def psn_type_group(code_or_group: str, dictionaries: Dictionaries | None = None) -> str | None:
    """The group (``employed``, ``retired``, ``resident``) the core and ``calc`` rules use.

    A group name maps to itself, a known code to its row's group, and an unlisted 4-digit
    code to the group its national prefix (11xx to 15xx) implies; anything else is None.
    """
    if code_or_group in _GROUPS:
        return code_or_group
    entry = (dictionaries or NATIONAL).lookup("psn_type", code_or_group)
    if entry is not None and "group" in entry.attributes:
        return entry.attributes["group"]
    if _PSN_TYPE.fullmatch(code_or_group):
        return _PSN_TYPE_GROUPS[code_or_group[:2]]
    return None


def _table(dictionary: str, *rows: tuple[str, str, str, Mapping[str, str]]) -> tuple[Entry, ...]:
    return tuple(Entry(dictionary, code, zh, en, attributes=attributes) for code, zh, en, attributes in rows)


_PERSON = {"person": "true"}
_FUND_LINE_ONLY = {"person": "false"}

_NATIONAL_ROWS: tuple[Entry, ...] = (
    *_table(
        "insutype",
        (
            "310",
            "职工基本医疗保险",
            "employee basic medical insurance",
            {**_PERSON, "account": "true", "pooled_fund": "310100", "account_fund": "310200"},
        ),
        (
            "390",
            "城乡居民基本医疗保险",
            "urban-rural resident basic medical insurance",
            {**_PERSON, "account": "false", "pooled_fund": "390100"},
        ),
        # 340100 is a project fund code: the national fund_pay_type table has none for 离休.
        (
            "340",
            "离休人员医疗保障",
            "retired cadres (离休) medical security",
            {**_PERSON, "account": "false", "pooled_fund": "340100"},
        ),
        ("320", "公务员医疗补助", "civil servant medical subsidy", _FUND_LINE_ONLY),
        ("330", "大额医疗费用补助", "large medical expense subsidy", _FUND_LINE_ONLY),
        ("370", "企业补充医疗保险", "enterprise supplementary medical insurance", _FUND_LINE_ONLY),
        ("392", "城乡居民大病医疗保险", "resident serious-illness insurance", _FUND_LINE_ONLY),
        ("510", "生育保险", "maternity insurance", _FUND_LINE_ONLY),
    ),
    *_table(
        "med_type",
        ("11", "普通门诊", "general outpatient", {}),
        ("12", "门诊挂号", "outpatient registration", {}),
        ("13", "急诊", "emergency", {}),
        ("14", "门诊慢特病", "chronic-disease outpatient", {}),
        ("15", "门诊特药", "outpatient special drugs (双通道: designated hospitals and pharmacies)", {}),
        ("21", "普通住院", "general inpatient", {}),
        ("22", "外伤住院", "trauma inpatient", {}),
        ("24", "急诊转住院", "emergency to inpatient", {}),
        ("41", "定点药店购药", "pharmacy purchase", {}),
    ),
    *_table(
        "psn_type",
        ("1101", "职工在职", "employee", {"group": "employed"}),
        ("1201", "职工退休", "retiree", {"group": "retired"}),
        ("1300", "离休", "retired cadre (离休)", {"group": "retired"}),
        ("1401", "少年儿童及学生", "minor or student resident", {"group": "resident"}),
        ("1501", "成年居民", "adult resident", {"group": "resident"}),
    ),
    *_table(
        "chrgitm_lv",
        ("01", "甲类", "class A", {"class": "A"}),
        ("02", "乙类", "class B", {"class": "B"}),
        ("03", "丙类", "class C (self-pay)", {"class": "C"}),
    ),
    *_table(
        "mdtrt_cert_type",
        ("01", "医保电子凭证", "medical insurance e-voucher", {}),
        ("02", "居民身份证", "resident ID card", {}),
        ("03", "社会保障卡", "social security card", {}),
    ),
    *_table(
        "fund_pay_type",
        ("310100", "职工基本医疗保险统筹基金", "employee pooled fund", {}),
        ("310200", "职工基本医疗保险个人账户", "employee personal account", {}),
        ("320100", "公务员医疗补助基金", "civil-servant medical subsidy", {}),
        ("330100", "大额医疗费用补助基金", "large-amount supplementary", {}),
        ("390100", "城乡居民基本医疗保险基金", "resident pooled fund", {}),
        ("390200", "城乡居民大病医疗保险基金", "resident serious-illness insurance", {}),
        ("610100", "医疗救助基金", "medical assistance", {}),
        ("340100", "离休人员医疗保障基金", "retired cadres fund (project code)", {}),
    ),
    *_table(
        "clr_type",
        ("11", "门诊", "outpatient", {}),
        ("21", "住院", "inpatient", {}),
        ("41", "药店购药", "pharmacy", {}),
        ("99", "其他", "other", {}),
    ),
    *_table(
        "fixmedins_type",
        ("1", "定点医疗机构", "medical institution", {}),
        ("2", "定点零售药店", "retail pharmacy", {}),
    ),
    *_table(
        "institution_level",
        ("1", "一级", "primary", {}),
        ("2", "二级", "secondary", {}),
        ("3", "三级", "tertiary", {}),
    ),
    *_table(
        "filing_category",
        ("retiree_resettled", "异地安置退休人员", "retiree resettled out of area", {"class": "long_term"}),
        ("long_term_resident", "异地长期居住人员", "long-term out-of-area resident", {"class": "long_term"}),
        ("posted_employee", "常驻异地工作人员", "employee posted out of area", {"class": "long_term"}),
        ("referral", "异地转诊就医人员", "referred patient", {"class": "temporary"}),
        ("emergency", "异地急诊抢救人员", "emergency rescue patient", {"class": "temporary"}),
        (
            "temporary_other",
            "其他临时外出就医人员",
            "other temporary out-of-area patient",
            {"class": "temporary"},
        ),
    ),
)

NATIONAL: Dictionaries = Dictionaries.national()
"""The national dictionaries, for callers that need no provincial extension."""
