"""The ``calc`` case format (domain/calc-case-format.md): JSON in, core values out, and back.

Everything a user can write in a case is checked here, at the edge: a wrong type, a
malformed code or an out-of-range number becomes a stable reason naming the field
(``visit.med_type``, ``items[2].price``) — never a traceback. The policy block is the same
shape the policy service imports, so :func:`parse_policy` serves both.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import partial
from operator import itemgetter, methodcaller
from typing import Any, TypeVar

from yidi_core.accumulators import KINDS, AccumulatorKind, Accumulators
from yidi_core.catalogue import CatalogueEntry, FeeItem, ItemClass, Restriction, index_catalogue
from yidi_core.codes import check_chronic_disease, check_diagnosis, check_item_code, plain_item_codes
from yidi_core.dictionaries import NATIONAL, psn_type_group
from yidi_core.errors import DomainError, invalid
from yidi_core.money import (
    ONE,
    ZERO,
    format_decimal,
    format_money,
    parse_decimal,
    parse_money,
    parse_ratio,
    plain_decimals,
    plain_money,
)
from yidi_core.policy import (
    ANY,
    Assistance,
    CivilServant,
    DeductibleScope,
    Funds,
    LowIncome,
    Policy,
    Rule,
    Segment,
    SeriousIllness,
    Supplementary,
    check_policy,
)
from yidi_core.settlement import Person, Settlement, Visit, settle

T = TypeVar("T")
_CLASSES = {
    "A": ItemClass.A,
    "B": ItemClass.B,
    "C": ItemClass.C,
    "01": ItemClass.A,
    "02": ItemClass.B,
    "03": ItemClass.C,
}
_SCOPES = frozenset(scope.value for scope in DeductibleScope)


@dataclass(frozen=True, slots=True)
class Case:
    """One parsed case: everything :func:`~yidi_core.settlement.settle` needs."""

    visit: Visit
    person: Person
    accumulators: Accumulators
    catalogue: Mapping[str, CatalogueEntry]
    policy: Policy
    items: tuple[FeeItem, ...]

    def settle(self) -> Settlement:
        """Settle the case with the core."""
        return settle(self.visit, self.person, self.catalogue, self.policy, self.items, self.accumulators)


# -- reading -----------------------------------------------------------------------------------


def _object(value: object, path: str) -> Mapping[str, Any]:
    # A JSON object is a dict: the exact-type test spares the slower abstract-class check.
    if type(value) is not dict and not isinstance(value, Mapping):
        raise invalid("INVALID_ARGUMENT", path, f"must be a JSON object, got {type(value).__name__}")
    return value


def _list(value: object, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise invalid("INVALID_ARGUMENT", path, f"must be a JSON array, got {type(value).__name__}")
    return value


def _required(document: Mapping[str, Any], key: str, path: str) -> Any:
    value = document.get(key)
    if value is None:
        raise invalid("INVALID_ARGUMENT", f"{path}.{key}", "is required")
    return value


def _optional(document: Mapping[str, Any], key: str, path: str, parse: Callable[[Any, str], T]) -> T | None:
    value = document.get(key)
    return None if value is None else parse(value, f"{path}.{key}")


def _text(value: object, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid("INVALID_ARGUMENT", path, f"must be a non-empty string, got {value!r}")
    return value.strip()


def _flag(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise invalid("INVALID_ARGUMENT", path, f"must be true or false, got {value!r}")
    return value


def _date(value: object, path: str) -> date:
    try:
        return date.fromisoformat(_text(value, path))
    except ValueError:
        raise invalid("INVALID_ARGUMENT", path, f"must be a date YYYY-MM-DD, got {value!r}") from None


def _code(dictionary: str) -> Callable[[object, str], str]:
    def parse(value: object, path: str) -> str:
        if not isinstance(value, str):
            raise invalid("INVALID_CODE", path, f"must be a {dictionary} code string, got {value!r}")
        return NATIONAL.check(dictionary, value.strip(), path).code

    return parse


def _psn_type(value: object, path: str) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text or psn_type_group(text) is None:
        raise invalid(
            "INVALID_CODE", path, f"must be employed, retired, resident or a 4-digit psn_type, got {value!r}"
        )
    return text


def _insutype(value: object, path: str) -> str:
    code = _code("insutype")(value, path)
    entry = NATIONAL.check("insutype", code, path)
    if entry.attributes.get("person") != "true":
        raise invalid("INVALID_CODE", path, f"insutype {code} is a fund line, not a person's insurance type")
    return code


def _strings(
    parse: Callable[[object, str], str], wildcard: bool = False
) -> Callable[[object, str], tuple[str, ...]]:
    def parse_all(value: object, path: str) -> tuple[str, ...]:
        return tuple(
            item if wildcard and item == ANY else parse(item, f"{path}[{index}]")
            for index, item in enumerate(_list(value, path))
        )

    return parse_all


def _diagnosis_prefix(value: object, path: str) -> str:
    text = _text(value, path).upper()
    if not (text[0].isalpha() and text.replace(".", "").isalnum() and len(text) <= 8):
        raise invalid("INVALID_CODE", path, f"must be the start of an ICD-10 code such as E11, got {value!r}")
    return text


_CASE_ITEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")
"""A case's own item code: the case's catalogue defines its codes (worked cases use short ones
such as ``XA01``), so any plain identifier will do; the nodes' RPCs still take national codes only."""


def check_case_item_code(value: object, path: str) -> str:
    """An item code as a case may write it: a national code, or the case catalogue's own identifier."""
    if isinstance(value, str) and _CASE_ITEM.fullmatch(value):
        return value
    return check_item_code(value, path)[0]  # refused, naming what a national code looks like


_PRICE_PLACES = 6
"""Decimals a quantity or unit price may have."""


def _price(value: object, path: str) -> Decimal:
    return parse_decimal(value, path, max_places=_PRICE_PLACES)


def _sn(value: object, path: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(value, path)


def parse_visit(document: object, path: str = "visit") -> Visit:
    """The ``visit`` block."""
    visit = _object(document, path)
    return Visit(
        med_type=_code("med_type")(_required(visit, "med_type", path), f"{path}.med_type"),
        service_date=_date(_required(visit, "service_date", path), f"{path}.service_date"),
        institution_level=_code("institution_level")(
            _required(visit, "institution_level", path), f"{path}.institution_level"
        ),
        diagnoses=_optional(visit, "diagnoses", path, _strings(check_diagnosis)) or (),
        chronic_disease=_optional(visit, "chronic_disease", path, check_chronic_disease),
        emergency=bool(_optional(visit, "emergency", path, _flag)),
        deductible_paid_in_stay=_optional(visit, "deductible_paid_in_stay", path, parse_money) or ZERO,
    )


def parse_person(document: object, path: str = "person") -> Person:
    """The ``person`` block; ``filing_category`` null or absent means not filed."""
    person = _object(document, path)
    return Person(
        insutype=_insutype(_required(person, "insutype", path), f"{path}.insutype"),
        psn_type=_psn_type(_required(person, "psn_type", path), f"{path}.psn_type"),
        filing_category=_optional(person, "filing_category", path, _code("filing_category")),
        account_balance=_optional(person, "account_balance", path, parse_money) or ZERO,
        use_account=bool(_optional(person, "use_account", path, _flag)),
        low_income=bool(_optional(person, "low_income", path, _flag)),
        civil_servant=bool(_optional(person, "civil_servant", path, _flag)),
        assistance_category=_optional(person, "assistance_category", path, _text),
        family_account_balance=_optional(person, "family_account_balance", path, parse_money) or ZERO,
        use_family_account=bool(_optional(person, "use_family_account", path, _flag)),
    )


def parse_accumulators(document: object, path: str = "accumulators") -> Accumulators:
    """The optional ``accumulators`` block: amounts by key for deductible, segment, cap and the
    further funds (``fund``)."""
    if document is None:
        return Accumulators()
    block = _object(document, path)
    tables = []
    for kind in KINDS:
        table = _object(block.get(kind) or {}, f"{path}.{kind}")
        tables.append(
            {_text(key, f"{path}.{kind}"): parse_money(v, f"{path}.{kind}.{key}") for key, v in table.items()}
        )
    return Accumulators(*tables)


def parse_catalogue_entry(document: object, path: str) -> CatalogueEntry:
    """One catalogue item: code, class A/B/C (or 01/02/03), B's ratio, ceiling, restriction."""
    entry = _object(document, path)
    raw_class = _required(entry, "class", path)
    item_class = _CLASSES.get(raw_class) if isinstance(raw_class, str) else None
    if item_class is None:
        raise invalid("INVALID_CODE", f"{path}.class", f"must be A, B or C, got {raw_class!r}")
    restriction = _optional(entry, "restriction", path, _restriction)
    return CatalogueEntry(
        code=check_case_item_code(_required(entry, "code", path), f"{path}.code"),
        name=_optional(entry, "name", path, _text) or "",
        item_class=item_class,
        selfpay_ratio=_optional(entry, "selfpay_ratio", path, parse_ratio) or ZERO,
        price_ceiling=_optional(entry, "price_ceiling", path, _price),
        restriction=restriction,
    )


def _restriction(document: object, path: str) -> Restriction:
    block = _object(document, path)
    return Restriction(
        med_types=_optional(block, "med_types", path, _strings(_code("med_type"))) or (),
        diagnosis_prefixes=_optional(block, "diagnosis_prefixes", path, _strings(_diagnosis_prefix)) or (),
    )


def parse_catalogue(document: object, path: str = "catalogue") -> Mapping[str, CatalogueEntry]:
    """The ``catalogue`` array, indexed by code."""
    entries = _list(document, path)
    return index_catalogue((parse_catalogue_entry(e, f"{path}[{i}]") for i, e in enumerate(entries)), path)


def parse_rule(document: object, path: str) -> Rule:
    """One policy rule: exactly one of ``ratio`` and ``segments``."""
    rule = _object(document, path)
    if ("ratio" in rule) == ("segments" in rule):
        raise invalid("INVALID_POLICY", path, "a rule has exactly one of ratio and segments")
    if "ratio" in rule:
        segments: tuple[Segment, ...] = (Segment(ZERO, _signed(rule["ratio"], f"{path}.ratio")),)
    else:
        segments = tuple(
            _segment(segment, f"{path}.segments[{index}]")
            for index, segment in enumerate(_list(rule["segments"], f"{path}.segments"))
        )
    scope = rule.get("deductible_scope", DeductibleScope.PER_VISIT.value)
    if not isinstance(scope, str) or scope not in _SCOPES:
        raise invalid(
            "INVALID_POLICY", f"{path}.deductible_scope", f"must be per_visit or annual, got {scope!r}"
        )
    return Rule(
        med_types=_strings(_code("med_type"), wildcard=True)(
            _required(rule, "med_types", path), f"{path}.med_types"
        ),
        psn_types=_strings(_psn_type, wildcard=True)(_required(rule, "psn_types", path), f"{path}.psn_types"),
        institution_levels=_strings(_code("institution_level"), wildcard=True)(
            _required(rule, "institution_levels", path), f"{path}.institution_levels"
        ),
        deductible=_optional(rule, "deductible", path, parse_money) or ZERO,
        deductible_scope=DeductibleScope(scope),
        segments=segments,
        deductible_key=_optional(rule, "deductible_key", path, _text),
        segment_key=_optional(rule, "segment_key", path, _text),
        cap=_optional(rule, "cap", path, parse_money),
        cap_key=_optional(rule, "cap_key", path, _text),
    )


def _signed(value: object, path: str) -> Decimal:
    """Range is the policy check's business (INVALID_POLICY); here only the shape."""
    return parse_decimal(value, path, max_places=6, signed=True)


def _segment(document: object, path: str) -> Segment:
    segment = _object(document, path)
    return Segment(
        start=parse_money(_required(segment, "from", path), f"{path}.from"),
        ratio=_signed(_required(segment, "ratio", path), f"{path}.ratio"),
    )


def _segments(document: object, path: str) -> tuple[Segment, ...]:
    return tuple(_segment(segment, f"{path}[{index}]") for index, segment in enumerate(_list(document, path)))


def _low_income(document: object, path: str, cap: Decimal | None) -> LowIncome:
    """A low-income person's terms; ``cap`` null is no cap, absent the fund's own cap."""
    block = _object(document, path)
    return LowIncome(
        threshold_factor=_optional(block, "threshold_factor", path, _signed) or ONE,
        ratio_bonus=_optional(block, "ratio_bonus", path, _signed) or ZERO,
        cap=_optional(block, "cap", path, parse_money) if "cap" in block else cap,
    )


def _serious_illness(document: object, path: str) -> SeriousIllness:
    block = _object(document, path)
    cap = _optional(block, "cap", path, parse_money)
    low_income = block.get("low_income")
    return SeriousIllness(
        threshold=parse_money(_required(block, "threshold", path), f"{path}.threshold"),
        segments=_segments(_required(block, "segments", path), f"{path}.segments"),
        cap=cap,
        low_income=None if low_income is None else _low_income(low_income, f"{path}.low_income", cap),
    )


def _funds(document: object, path: str) -> Funds:
    """The ``funds`` block (settlement-rules.md, "Further funds"); each fund optional."""
    block = _object(document, path)
    supplementary = _optional(block, "supplementary", path, _object)
    civil = _optional(block, "civil_servant", path, _object)
    assistance = _optional(block, "assistance", path, _object)
    where = {name: f"{path}.{name}" for name in ("supplementary", "civil_servant", "assistance")}
    return Funds(
        supplementary=None
        if supplementary is None
        else Supplementary(
            ratio=_signed(
                _required(supplementary, "ratio", where["supplementary"]), f"{where['supplementary']}.ratio"
            ),
            cap=_optional(supplementary, "cap", where["supplementary"], parse_money),
        ),
        serious_illness=_optional(block, "serious_illness", path, _serious_illness),
        civil_servant=None
        if civil is None
        else CivilServant(
            deductible_ratio=_signed(
                _required(civil, "deductible_ratio", where["civil_servant"]),
                f"{where['civil_servant']}.deductible_ratio",
            ),
            selfpay_ratio=_signed(
                _required(civil, "selfpay_ratio", where["civil_servant"]),
                f"{where['civil_servant']}.selfpay_ratio",
            ),
        ),
        assistance=None
        if assistance is None
        else Assistance(
            ratio=_signed(
                _required(assistance, "ratio", where["assistance"]), f"{where['assistance']}.ratio"
            ),
            cap=_optional(assistance, "cap", where["assistance"], parse_money),
            categories=_strings(_text)(
                _required(assistance, "categories", where["assistance"]), f"{where['assistance']}.categories"
            ),
        ),
    )


def parse_policy(document: object, path: str = "policy") -> Policy:
    """The ``policy`` block, checked as a whole (``INVALID_POLICY`` names every bad field)."""
    block = _object(document, path)
    rules = tuple(
        parse_rule(rule, f"{path}.rules[{index}]")
        for index, rule in enumerate(_list(_required(block, "rules", path), f"{path}.rules"))
    )
    adjustments_path = f"{path}.ratio_adjustments"
    adjustments = {
        _code("filing_category")(category, adjustments_path): _signed(value, f"{adjustments_path}.{category}")
        for category, value in _object(block.get("ratio_adjustments") or {}, adjustments_path).items()
    }
    factors_path = f"{path}.unfiled_factors"
    factors = {
        _text(care, factors_path): _signed(value, f"{factors_path}.{care}")
        for care, value in _object(block.get("unfiled_factors") or {}, factors_path).items()
    }
    unfiled_direct = bool(_optional(block, "unfiled_direct", path, _flag))
    funds = _optional(block, "funds", path, _funds) or Funds()
    family_account = bool(_optional(block, "family_account", path, _flag))
    policy = Policy(
        rules, adjustments, factors, unfiled_direct=unfiled_direct, funds=funds, family_account=family_account
    )
    check_policy(policy, path)
    return policy


def parse_items(document: object, path: str = "items") -> tuple[FeeItem, ...]:
    """The ``items`` array: serial number, code, quantity, unit price, optional line amount."""
    lines = _list(document, path)
    return _plain_items(lines) or tuple([_item(raw, path, index) for index, raw in enumerate(lines)])


_AMOUNT = methodcaller("get", "amount")


def _plain_items(lines: list[Any]) -> tuple[FeeItem, ...] | None:
    """The lines read a column at a time, when every value is one the line-by-line reading takes
    exactly as written; else None (and each line is read on its own, naming what is wrong).

    A bill has hundreds of lines: each column's check is one pattern mapped over it, at C speed.
    """
    if not lines or set(map(type, lines)) != {dict}:
        return None
    try:
        serials = list(map(itemgetter("sn"), lines))
        codes = list(map(itemgetter("code"), lines))
        quantities = plain_decimals(list(map(itemgetter("qty"), lines)), _PRICE_PLACES)
        prices = plain_decimals(list(map(itemgetter("price"), lines)), _PRICE_PLACES)
    except KeyError:
        return None
    amounts: list[Any] = list(map(_AMOUNT, lines))
    given = [index for index, amount in enumerate(amounts) if amount is not None]
    given_amounts = plain_money([amounts[index] for index in given])
    if (
        quantities is None
        or prices is None
        or given_amounts is None
        or set(map(type, serials)) != {str}
        or "" in serials
        or list(map(str.strip, serials)) != serials
        or not plain_item_codes(codes)
    ):
        return None
    for index, amount in zip(given, given_amounts, strict=True):
        amounts[index] = amount
    return tuple(map(_new_line, zip(serials, codes, quantities, prices, amounts, strict=True)))


def _item(raw: object, path: str, index: int) -> FeeItem:
    # A bill has hundreds of lines, so a line is first read with the same checks but without
    # the field paths only an error needs; a line they refuse is read again to name its field.
    if isinstance(raw, dict):
        get = raw.get
        amount = get("amount")
        try:
            return _new_fee_item(
                FeeItem,
                (
                    _sn(get("sn"), ""),
                    check_case_item_code(get("code"), ""),
                    _price(get("qty"), ""),
                    _price(get("price"), ""),
                    None if amount is None else parse_money(amount, ""),
                ),
            )
        except DomainError:
            pass
    where = f"{path}[{index}]"
    item = _object(raw, where)
    return FeeItem(
        sn=_sn(_required(item, "sn", where), f"{where}.sn"),
        code=check_case_item_code(_required(item, "code", where), f"{where}.code"),
        qty=_price(_required(item, "qty", where), f"{where}.qty"),
        price=_price(_required(item, "price", where), f"{where}.price"),
        amount=_optional(item, "amount", where, parse_money),
    )


# A named tuple's own __new__ is a Python function: tuple.__new__ builds one at C speed.
_new_fee_item = tuple.__new__
_new_line = partial(_new_fee_item, FeeItem)


def parse_case(document: object) -> Case:
    """A whole case; extra keys are ignored, as the format says.

    A golden-case file (``{"case": …, "expected": …}``) is read as the case it holds.
    """
    case = _object(document, "case")
    if "visit" not in case and isinstance(case.get("case"), Mapping):
        case = case["case"]
    return Case(
        visit=parse_visit(_required(case, "visit", "case"), "visit"),
        person=parse_person(_required(case, "person", "case"), "person"),
        accumulators=parse_accumulators(case.get("accumulators")),
        catalogue=parse_catalogue(_required(case, "catalogue", "case")),
        policy=parse_policy(_required(case, "policy", "case")),
        items=parse_items(_required(case, "items", "case")),
    )


# -- writing -----------------------------------------------------------------------------------

_TOTALS = (
    "medfee_sumamt",
    "fulamt_ownpay_amt",
    "overlmt_selfpay",
    "preselfpay_amt",
    "inscp_scp_amt",
    "act_pay_dedc",
    "hifp_pay",
    "fund_pay_sumamt",
    "psn_part_amt",
    "acct_pay",
    "psn_cash_pay",
)
_FURTHER = ("hifob_pay", "hifmi_pay", "cvlserv_pay", "maf_pay", "acct_mulaid_pay")
_ITEM_PARTS = ("amount", "fulamt_ownpay", "overlmt_selfpay", "preselfpay", "inscp")


def _money_table(values: Mapping[str, Decimal]) -> dict[str, str]:
    return {key: format_money(value) for key, value in values.items()}


def result_document(settlement: Settlement, *, explain: bool = False) -> dict[str, Any]:
    """The result JSON of the format, plus ``setldetail`` fund lines, ``notices`` and, if asked, the explanation."""
    document: dict[str, Any] = {name: format_money(getattr(settlement, name)) for name in _TOTALS}
    document["items"] = [
        {"sn": item.sn} | {part: format_money(getattr(item, part)) for part in _ITEM_PARTS}
        for item in settlement.items
    ]
    # The further funds' keys appear only under a policy that names one, so older results stay as they were.
    document["accumulators_after"] = {
        kind.value: _money_table(settlement.accumulators_after[kind])
        for kind in KINDS
        if kind is not AccumulatorKind.FUND or settlement.funds_named
    }
    if settlement.funds_named:
        document.update({name: format_money(getattr(settlement, name)) for name in _FURTHER})
    document["setldetail"] = [
        {
            "fund_pay_type": line.fund_pay_type,
            "fund_name": line.name,
            "fund_payamt": format_money(line.amount),
        }
        for line in settlement.fund_lines
    ]
    document["notices"] = list(settlement.notices)
    if explain:
        document["explanation"] = explanation_document(settlement)
    return document


def _optional_money(value: Decimal | None) -> str | None:
    return None if value is None else format_money(value)


def explanation_document(settlement: Settlement) -> dict[str, Any]:
    """Every intermediate value, then the same story in sentences (``text``)."""
    why = settlement.explanation
    rule = why.rule
    document: dict[str, Any] = {
        "rule": {
            "index": why.rule_index,
            "med_types": list(rule.med_types),
            "psn_types": list(rule.psn_types),
            "institution_levels": list(rule.institution_levels),
        },
        "items": [
            {
                "sn": item.sn,
                "code": item.code,
                "class": item.item_class.value if item.item_class else None,
                "selfpay_ratio": format_decimal(item.selfpay_ratio),
                "price_ceiling": None if item.price_ceiling is None else format_decimal(item.price_ceiling),
                "selfpay_reasons": [reason.value for reason in item.reasons],
            }
            for item in why.items
        ],
        "deductible": {
            "scope": rule.deductible_scope.value,
            "key": rule.annual_deductible_key,
            "deductible": format_money(rule.deductible),
            "counted_before": format_money(why.deductible_counted_before),
            "paid_now": format_money(why.act_pay_dedc),
        },
        "eligible": format_money(why.eligible),
        "ratio_adjustment": {
            "filing_category": why.filing_category,
            "adjustment": format_decimal(why.ratio_adjustment),
        },
        "segments": {
            "key": why.scale_key,
            "counted_before": format_money(why.scale_before),
            "steps": [
                {
                    "from": format_money(step.start),
                    "to": _optional_money(step.end),
                    "policy_ratio": format_decimal(step.base_ratio),
                    "ratio": format_decimal(step.ratio),
                    "amount": format_money(step.amount),
                    "fund": format_decimal(step.fund),
                }
                for step in why.segments
            ],
        },
        "fund_before_cap": format_money(why.fund_raw),
        "cap": None
        if why.cap is None
        else {
            "key": why.cap.key,
            "cap": format_money(why.cap.cap),
            "used_before": format_money(why.cap.used_before),
            "room_before": format_money(why.cap.room_before),
            "room_after": format_money(why.cap.room_after),
            "reached": why.cap.limited,
        },
        "changes": [
            {"kind": change.kind.value, "key": change.key, "delta": format_money(change.delta)}
            for change in settlement.changes
        ],
        "text": why.sentences(),
    }
    if settlement.funds_named:
        document["funds"] = [
            {
                "fund": step.fund,
                "rule": step.rule,
                "base": format_money(step.base),
                "share": format_money(step.share),
                "room_before": _optional_money(step.room),
                "paid": format_money(step.paid),
            }
            for step in why.funds
        ]
    return document


def error_document(error: DomainError) -> dict[str, Any]:
    """The refusal JSON: ``{"error": {"reason", "message", "field_violations"}}``."""
    body: dict[str, Any] = {"reason": error.reason_code, "message": error.message}
    if error.violations:
        body["field_violations"] = [
            {"field": v.field, "description": v.description} for v in error.violations
        ]
    return {"error": body}
