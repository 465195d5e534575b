"""Dictionaries as data: national rows, region-scoped extensions, validity, and refusals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from yidi_core.dictionaries import NATIONAL, Dictionaries, Entry, psn_type_group
from yidi_core.errors import DomainError

LOCAL_MED_TYPE = Entry(
    "med_type",
    "9901",
    "省内特殊门诊",
    "provincial special outpatient",
    region="330000",
    valid_from=date(2026, 1, 1),
)


@pytest.mark.parametrize(
    ("dictionary", "code", "name_en"),
    [
        ("insutype", "310", "employee basic medical insurance"),
        ("insutype", "390", "urban-rural resident basic medical insurance"),
        ("med_type", "14", "chronic-disease outpatient"),
        ("med_type", "41", "pharmacy purchase"),
        ("psn_type", "1300", "retired cadre (离休)"),
        ("chrgitm_lv", "03", "class C (self-pay)"),
        ("mdtrt_cert_type", "01", "medical insurance e-voucher"),
        ("fund_pay_type", "610100", "medical assistance"),
        ("clr_type", "99", "other"),
        ("fixmedins_type", "2", "retail pharmacy"),
        ("institution_level", "3", "tertiary"),
        ("filing_category", "referral", "referred patient"),
    ],
)
def test_national_rows(dictionary: str, code: str, name_en: str) -> None:
    entry = NATIONAL.lookup(dictionary, code)
    assert entry is not None
    assert (entry.dictionary, entry.code, entry.name_en, entry.region) == (
        dictionary,
        code,
        name_en,
        "000000",
    )


def test_national_codes() -> None:
    assert NATIONAL.codes("med_type") == ("11", "12", "13", "14", "15", "21", "22", "24", "41")
    assert NATIONAL.codes("insutype") == ("310", "320", "330", "340", "370", "390", "392", "510")
    assert NATIONAL.codes("chrgitm_lv") == ("01", "02", "03")
    assert NATIONAL.codes("fund_pay_type") == (
        "310100",
        "310200",
        "320100",
        "330100",
        "340100",
        "390100",
        "390200",
        "610100",
    )
    assert NATIONAL.codes("clr_type") == ("11", "21", "41", "99")


def test_national_rows_are_visible_from_every_region_and_date() -> None:
    assert NATIONAL.lookup("med_type", "21", region="520100", on=date(2026, 3, 1)) is not None
    assert Dictionaries.national().codes("med_type", region="131000") == NATIONAL.codes("med_type")


@pytest.mark.parametrize(
    ("insutype", "attributes"),
    [
        ("310", {"person": "true", "account": "true", "pooled_fund": "310100", "account_fund": "310200"}),
        ("390", {"person": "true", "account": "false", "pooled_fund": "390100"}),
        ("340", {"person": "true", "account": "false", "pooled_fund": "340100"}),
        ("392", {"person": "false"}),
        ("510", {"person": "false"}),
    ],
)
def test_insutype_attributes(insutype: str, attributes: dict[str, str]) -> None:
    entry = NATIONAL.check("insutype", insutype, "insutype")
    assert dict(entry.attributes) == attributes


def test_fund_lines_named_by_insutypes_exist() -> None:
    for insutype in NATIONAL.codes("insutype"):
        attributes = NATIONAL.check("insutype", insutype, "insutype").attributes
        for key in ("pooled_fund", "account_fund"):
            if key in attributes:
                NATIONAL.check("fund_pay_type", attributes[key], key)


@pytest.mark.parametrize(
    ("code", "category_class"),
    [
        ("retiree_resettled", "long_term"),
        ("long_term_resident", "long_term"),
        ("posted_employee", "long_term"),
        ("referral", "temporary"),
        ("emergency", "temporary"),
        ("temporary_other", "temporary"),
    ],
)
def test_filing_categories(code: str, category_class: str) -> None:
    assert NATIONAL.check("filing_category", code, "filing_category").attributes["class"] == category_class


def test_chrgitm_lv_class() -> None:
    assert [
        NATIONAL.check("chrgitm_lv", code, "chrgitm_lv").attributes["class"] for code in ("01", "02", "03")
    ] == [
        "A",
        "B",
        "C",
    ]


def test_entry_attributes_are_read_only() -> None:
    source = {"group": "employed"}
    entry = Entry("psn_type", "1199", "职工其他", "other employee", attributes=source)
    source["group"] = "retired"
    assert entry.attributes["group"] == "employed"
    with pytest.raises(TypeError):
        entry.attributes["group"] = "retired"  # type: ignore[index]


@pytest.mark.parametrize(
    ("value", "group"),
    [
        ("employed", "employed"),
        ("retired", "retired"),
        ("resident", "resident"),
        ("1101", "employed"),
        ("1201", "retired"),
        ("1300", "retired"),
        ("1401", "resident"),
        ("1501", "resident"),
        ("1102", "employed"),
        ("1299", "retired"),
        ("1402", "resident"),
        ("1599", "resident"),
        ("1601", None),
        ("9901", None),
        ("110", None),
        ("", None),
        ("Employed", None),
    ],
)
def test_psn_type_group(value: str, group: str | None) -> None:
    assert psn_type_group(value) == group


def test_psn_type_group_prefers_a_listed_row() -> None:
    special = NATIONAL.extended(
        [Entry("psn_type", "1199", "灵活就业退休过渡", "transition", attributes={"group": "retired"})]
    )
    assert psn_type_group("1199", special) == "retired"
    assert psn_type_group("1199") == "employed"


def test_provincial_extension_is_seen_inside_its_scope_from_valid_from() -> None:
    extended = NATIONAL.extended([LOCAL_MED_TYPE])
    assert extended.lookup("med_type", "9901", region="330400", on=date(2026, 3, 1)) == LOCAL_MED_TYPE
    assert extended.lookup("med_type", "9901", region="330000", on=date(2026, 1, 1)) == LOCAL_MED_TYPE
    assert extended.lookup("med_type", "9901", region="330400", on=date(2025, 12, 31)) is None
    assert extended.lookup("med_type", "9901", region="110000", on=date(2026, 3, 1)) is None
    assert extended.lookup("med_type", "9901", on=date(2026, 3, 1)) is None
    assert "9901" in extended.codes("med_type", region="330402")
    assert "9901" not in extended.codes("med_type", region="360100")
    assert NATIONAL.lookup("med_type", "9901", region="330400") is None  # the original is untouched
    assert extended.entries[-1] == LOCAL_MED_TYPE


def test_valid_to_is_inclusive() -> None:
    row = Entry("med_type", "9902", "旧病种门诊", "old", region="330400", valid_to=date(2025, 12, 31))
    extended = NATIONAL.extended([row])
    assert extended.lookup("med_type", "9902", region="330400", on=date(2025, 12, 31)) == row
    assert extended.lookup("med_type", "9902", region="330400", on=date(2026, 1, 1)) is None


@pytest.mark.parametrize(
    ("scope", "seen_from", "not_seen_from"),
    [
        ("330000", ("330000", "330400", "330402"), ("110000", "000000")),
        ("330400", ("330400", "330402"), ("330000", "330100", "000000")),
        ("330402", ("330402",), ("330400", "330403", "330000")),
    ],
)
def test_region_scopes(scope: str, seen_from: tuple[str, ...], not_seen_from: tuple[str, ...]) -> None:
    extended = NATIONAL.extended([Entry("clr_type", "98", "地方清算", "local clearing", region=scope)])
    for region in seen_from:
        assert extended.lookup("clr_type", "98", region=region) is not None, region
    for region in not_seen_from:
        assert extended.lookup("clr_type", "98", region=region) is None, region


def test_successive_rows_for_one_code_with_disjoint_validity() -> None:
    old = Entry("med_type", "9903", "旧", "old name", region="330000", valid_to=date(2025, 12, 31))
    new = Entry("med_type", "9903", "新", "new name", region="330000", valid_from=date(2026, 1, 1))
    extended = NATIONAL.extended([old, new])
    assert extended.lookup("med_type", "9903", region="330400", on=date(2025, 6, 1)) == old
    assert extended.lookup("med_type", "9903", region="330400", on=date(2026, 6, 1)) == new
    assert extended.lookup("med_type", "9903", region="330400") == new
    assert extended.codes("med_type", region="330400").count("9903") == 1


@pytest.mark.parametrize(
    "row",
    [
        Entry("med_type", "11", "本地普通门诊", "local outpatient", region="330000"),
        Entry(
            "med_type", "11", "本地普通门诊", "local outpatient", region="330400", valid_from=date(2026, 1, 1)
        ),
        Entry("insutype", "310", "职工医保", "employee", region="110000", attributes={"account": "false"}),
        Entry("med_type", "11", "普通门诊", "general outpatient"),
    ],
)
def test_extension_redefining_a_national_code_is_rejected(row: Entry) -> None:
    with pytest.raises(ValueError, match="cannot redefine"):
        NATIONAL.extended([row])


def test_overlapping_extensions_are_rejected_but_disjoint_scopes_are_not() -> None:
    with pytest.raises(ValueError, match="cannot redefine"):
        NATIONAL.extended([LOCAL_MED_TYPE, Entry("med_type", "9901", "市", "city", region="330400")])
    both = NATIONAL.extended([LOCAL_MED_TYPE, Entry("med_type", "9901", "京", "Beijing", region="110000")])
    assert both.check("med_type", "9901", "med_type", region="110105").name_en == "Beijing"


@pytest.mark.parametrize(
    "make",
    [
        lambda: Entry("med_type", "9901", "x", "x", region="3300"),
        lambda: Entry("med_type", "9901", "x", "x", region="001200"),
        lambda: Entry("med_type", "9901", "x", "x", valid_from=date(2026, 2, 1), valid_to=date(2026, 1, 1)),
    ],
)
def test_malformed_rows_are_rejected(make: Callable[[], Entry]) -> None:
    with pytest.raises(ValueError):
        make()


def test_check_refuses_an_unknown_code_naming_the_field() -> None:
    with pytest.raises(DomainError) as caught:
        NATIONAL.check("med_type", "99", "visit.med_type")
    error = caught.value
    assert error.reason_code == "INVALID_CODE"
    assert [violation.field for violation in error.violations] == ["visit.med_type"]
    assert error.violations[0].description == (
        "'99' is not a med_type code; known: 11, 12, 13, 14, 15, 21, 22, 24, 41"
    )


def test_check_names_region_and_date_and_truncates_the_known_list() -> None:
    many = NATIONAL.extended(
        Entry("clr_type", f"{n:02d}", "地方", "local", region="330000", valid_from=date(2026, 1, 1))
        for n in range(50, 70)
    )
    with pytest.raises(DomainError) as caught:
        many.check("clr_type", "12", "clr_type", region="330400", on=date(2026, 3, 1))
    description = caught.value.violations[0].description
    assert description.startswith(
        "'12' is not a clr_type code in region 330400 on 2026-03-01; known: 11, 21,"
    )
    assert description.endswith("... (12 more)")


@pytest.mark.parametrize("code", [" 21 ", "21"])
def test_check_accepts_surrounding_spaces(code: str) -> None:
    assert NATIONAL.check("med_type", code, "med_type").code == "21"


@pytest.mark.parametrize("code", [21, None, ""])
def test_check_refuses_non_strings_and_empty(code: object) -> None:
    with pytest.raises(DomainError) as caught:
        NATIONAL.check("med_type", code, "med_type")
    assert caught.value.reason_code == "INVALID_CODE"


def test_unknown_dictionary_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown dictionary"):
        NATIONAL.lookup("deductible_scope", "1")


def test_malformed_query_region_is_invalid_code() -> None:
    with pytest.raises(DomainError) as caught:
        NATIONAL.lookup("med_type", "11", region="3304")
    assert caught.value.violations[0].field == "admdvs"
