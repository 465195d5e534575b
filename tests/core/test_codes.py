"""Identifier validators: the shapes in domain/codes.md, and errors that name the field."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from yidi_core.codes import (
    NATIONAL_REGION,
    PILOT_CHRONIC_DISEASES,
    ItemKind,
    birth_date_of,
    check_chronic_disease,
    check_consumable,
    check_diagnosis,
    check_drug,
    check_id_number,
    check_institution,
    check_item_code,
    check_msgid,
    check_record_id,
    check_region,
    check_service_item,
    chronic_family,
    chronic_matches,
    institution_region,
    institution_type,
    mask_id_number,
    msgid_sender,
    province_of,
)
from yidi_core.errors import DomainError

SAMPLE_ID = "11010519491231002X"


def _iso7064_check(body: str) -> str:
    """ISO 7064 MOD 11-2 written out in its recursive form, independent of the weights table."""
    remainder = 0
    for digit in body:
        remainder = (remainder + int(digit)) * 2 % 11
    value = (12 - remainder) % 11
    return "X" if value == 10 else str(value)


def _with_check_digit(body: str) -> str:
    return body + _iso7064_check(body)


def _refusal(check: Callable[..., object], value: object, field: str) -> DomainError:
    with pytest.raises(DomainError) as caught:
        check(value, field)
    error = caught.value
    assert error.reason_code == "INVALID_CODE"
    assert error.reason.grpc_code == "INVALID_ARGUMENT"
    assert [violation.field for violation in error.violations] == [field]
    return error


@pytest.mark.parametrize(
    ("check", "value", "expected"),
    [
        (check_region, "330400", "330400"),
        (check_region, " 110000 ", "110000"),
        (check_region, NATIONAL_REGION, "000000"),
        (check_institution, "H33040100011", "H33040100011"),
        (check_institution, "P11010500672", "P11010500672"),
        (check_drug, "XA10BFA022A001010100001", "XA10BFA022A001010100001"),
        (check_drug, "ZA01AAA0010010100001AB2", "ZA01AAA0010010100001AB2"),
        (check_consumable, "C0203010340000000001", "C0203010340000000001"),
        (check_service_item, "001102000010000", "001102000010000"),
        (check_service_item, "310100001", "310100001"),
        (check_chronic_disease, "M03900", "M03900"),
        (check_chronic_disease, "M00503", "M00503"),
        (check_diagnosis, "E11.900", "E11.900"),
        (check_diagnosis, "I21.000", "I21.000"),
        (check_diagnosis, "E11", "E11"),
        (check_diagnosis, "I10", "I10"),
        (check_diagnosis, "C34.901", "C34.901"),
        (check_diagnosis, "e11.9", "E11.9"),
        (check_id_number, SAMPLE_ID, SAMPLE_ID),
        (check_id_number, SAMPLE_ID.lower(), SAMPLE_ID),
        (check_msgid, "H33040100011202601060930000001", "H33040100011202601060930000001"),
        (check_msgid, "330400000000202601060930000001", "330400000000202601060930000001"),
        (check_msgid, "000000000000202602282359590042", "000000000000202602282359590042"),
    ],
)
def test_valid_codes_are_returned_stripped(check: Callable[[object], str], value: str, expected: str) -> None:
    assert check(value) == expected


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (check_region, "33040"),
        (check_region, "3304000"),
        (check_region, "33O400"),
        (check_region, "001200"),
        (check_region, ""),
        (check_region, "   "),
        (check_region, "330400\n"),
        (check_region, "３３０４００"),
        (check_region, 330400),
        (check_region, None),
        (check_institution, "H3304"),
        (check_institution, "X33040100011"),
        (check_institution, "h33040100011"),
        (check_institution, "H3304010001"),
        (check_institution, "H330401000111"),
        (check_institution, "H00000000011"),
        (check_drug, "XA10BFA022A00101010000"),
        (check_drug, "XA10BFA022A0010101000011"),
        (check_drug, "YA10BFA022A001010100001"),
        (check_drug, "Xa10BFA022A001010100001"),
        (check_drug, "XA10BFA022A00101010000-"),
        (check_consumable, "C020301034000000000"),
        (check_consumable, "C02030103400000000001"),
        (check_consumable, "C020301034000000000A"),
        (check_service_item, "00110200"),
        (check_service_item, "0011020000100001"),
        (check_service_item, "00110200001000A"),
        (check_chronic_disease, "M0390"),
        (check_chronic_disease, "M039000"),
        (check_chronic_disease, "N03900"),
        (check_diagnosis, "E1"),
        (check_diagnosis, "E11."),
        (check_diagnosis, "E11.90000"),
        (check_diagnosis, "111.900"),
        (check_diagnosis, "E11-900"),
        (check_msgid, "H3304010001120260106093000000"),
        (check_msgid, "H330401000112026010609300000012"),
        (check_msgid, "X33040100011202601060930000001"),
        (check_msgid, "330400000001202601060930000001"),
        (check_msgid, "H33040100011202613060930000001"),
        (check_msgid, "H33040100011202602300930000001"),
        (check_msgid, "H33040100011202601062460000001"),
        (check_msgid, "H33040100011202601060960000001"),
    ],
)
def test_malformed_codes_are_refused_naming_the_field(check: Callable[..., str], value: object) -> None:
    error = _refusal(check, value, "request.some_field")
    assert error.violations[0].description.startswith("must ")


def test_message_says_the_shape_and_what_was_given() -> None:
    error = _refusal(check_institution, "H3304", "fixmedins_code")
    assert error.violations[0].description == (
        "must be H or P followed by 11 digits, the first 6 being the institution's region code, got 'H3304'"
    )
    assert error.message == f"fixmedins_code: {error.violations[0].description}"


def test_non_string_is_refused_by_type_name() -> None:
    error = _refusal(check_consumable, 20203010340000000001, "items[0].code")
    assert error.violations[0].description.endswith("got a value of type int")


def test_huge_value_is_cut_short_in_the_message() -> None:
    error = _refusal(check_region, "1" * 10_000, "admdvs")
    assert len(error.violations[0].description) < 300
    assert "10000 characters" in error.violations[0].description


def test_default_field_names() -> None:
    cases: list[tuple[Callable[[object], object], str]] = [
        (check_region, "admdvs"),
        (check_institution, "fixmedins_code"),
        (check_drug, "code"),
        (check_consumable, "code"),
        (check_service_item, "code"),
        (check_item_code, "code"),
        (check_chronic_disease, "chronic_disease"),
        (check_diagnosis, "diagnoses"),
        (check_id_number, "psn_cert_no"),
        (check_msgid, "request_id"),
    ]
    for check, field in cases:
        with pytest.raises(DomainError) as caught:
            check("?")
        assert caught.value.violations[0].field == field


@pytest.mark.parametrize(
    ("region", "province"),
    [("330400", "330000"), ("330000", "330000"), ("131022", "130000"), ("440300", "440000")],
)
def test_province_of(region: str, province: str) -> None:
    assert province_of(region) == province


def test_province_of_refuses_the_national_node() -> None:
    _refusal(province_of, NATIONAL_REGION, "target_admdvs")
    _refusal(province_of, "3304", "target_admdvs")


@pytest.mark.parametrize(
    ("code", "region", "kind"),
    [("H33040100011", "330401", "1"), ("P11010500672", "110105", "2")],
)
def test_institution_region_and_type(code: str, region: str, kind: str) -> None:
    assert institution_region(code) == region
    assert institution_type(code) == kind


def test_institution_helpers_validate() -> None:
    _refusal(institution_region, "H3304", "fixmedins_code")
    _refusal(institution_type, "Q33040100011", "fixmedins_code")


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("XA10BFA022A001010100001", ItemKind.DRUG),
        ("ZA01AAA0010010100001AB2", ItemKind.DRUG),
        ("C0203010340000000001", ItemKind.CONSUMABLE),
        ("001102000010000", ItemKind.SERVICE),
        (" 310100001 ", ItemKind.SERVICE),
    ],
)
def test_item_code_kind(value: str, kind: ItemKind) -> None:
    assert check_item_code(value) == (value.strip(), kind)


@pytest.mark.parametrize(
    ("value", "expected_shape"),
    [
        ("XA10", "X or Z followed by 22"),
        ("C02", "C followed by 19 digits"),
        ("0011", "9 to 15 digits"),
        ("Q123", "a drug code"),
        ("", "a drug code"),
    ],
)
def test_item_code_error_names_the_shape_its_first_character_implies(value: str, expected_shape: str) -> None:
    error = _refusal(check_item_code, value, "items[3].code")
    assert expected_shape in error.violations[0].description


def test_pilot_chronic_diseases() -> None:
    assert set(PILOT_CHRONIC_DISEASES) == {"M03900", "M01600", "M00500", "M07800", "M08300"}
    assert PILOT_CHRONIC_DISEASES["M03900"] == "hypertension"
    for code in PILOT_CHRONIC_DISEASES:
        assert check_chronic_disease(code) == code


def test_chronic_family() -> None:
    assert chronic_family("M00503") == "M0050"
    assert chronic_family("M00500") == "M0050"
    _refusal(chronic_family, "M005", "chronic_disease")


@pytest.mark.parametrize(
    ("listed", "code", "matches"),
    [
        ("M00500", "M00500", True),
        ("M00500", "M00503", True),
        ("M07800", "M07803", True),
        ("M00503", "M00503", True),
        ("M00503", "M00500", False),
        ("M00503", "M00504", False),
        ("M00500", "M00513", False),
        ("M03900", "M01600", False),
    ],
)
def test_chronic_matches_family_and_sub_code(listed: str, code: str, matches: bool) -> None:
    assert chronic_matches(listed, code) is matches


def test_chronic_matches_validates_both_codes() -> None:
    _refusal(lambda value, _field: chronic_matches("M00500", value), "M005", "chronic_disease")
    _refusal(lambda value, _field: chronic_matches(value, "M00500"), "00500", "chronic_disease")


def test_sample_id_check_digit_from_the_iso_7064_definition() -> None:
    assert _iso7064_check(SAMPLE_ID[:17]) == "X"


@pytest.mark.parametrize(
    "body",
    ["33040219800229001", "44030320000101123", "11010519000101000", "52010119991231456"],
)
def test_id_numbers_with_computed_check_digits(body: str) -> None:
    number = _with_check_digit(body)
    assert check_id_number(number) == number


@pytest.mark.parametrize(
    "value",
    [
        "110105194912310021",  # wrong check digit
        "11010519491231002Y",
        "1101051949123100",
        "1101051949123100211",
        _with_check_digit("33040219810229001"),  # 1981 is no leap year
        _with_check_digit("33040218991231001"),  # before 1900
        _with_check_digit("33040219801301001"),  # month 13
    ],
)
def test_bad_id_numbers_are_refused_without_echoing_them(value: str) -> None:
    error = _refusal(check_id_number, value, "person.psn_cert_no")
    for text in (error.message, error.violations[0].description, str(error)):
        assert value not in text
        assert value.upper() not in text
        assert value[6:14] not in text  # the birth date stays hidden too


def test_id_number_error_shows_the_masked_number() -> None:
    error = _refusal(check_id_number, "110105194912310021", "psn_cert_no")
    assert "'110105********0021'" in error.violations[0].description
    assert "check digit" in error.violations[0].description


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        (SAMPLE_ID, "110105********002X"),
        ("1101051949123100", "****************"),
        ("", ""),
    ],
)
def test_mask_id_number(value: str, masked: str) -> None:
    assert mask_id_number(value) == masked


def test_birth_date_of() -> None:
    assert birth_date_of(SAMPLE_ID) == date(1949, 12, 31)
    assert birth_date_of(_with_check_digit("33040219800229001")) == date(1980, 2, 29)
    _refusal(birth_date_of, "110105194912310021", "psn_cert_no")


@pytest.mark.parametrize(
    ("msgid", "sender"),
    [
        ("H33040100011202601060930000001", "H33040100011"),
        ("P11010500672202601060930000002", "P11010500672"),
        ("330400000000202601060930000001", "330400000000"),
    ],
)
def test_msgid_sender(msgid: str, sender: str) -> None:
    assert msgid_sender(msgid) == sender


def test_msgid_timestamp_error_is_specific() -> None:
    error = _refusal(check_msgid, "H33040100011202602300930000001", "request_id")
    assert "yyyyMMddHHmmss" in error.violations[0].description


@pytest.mark.parametrize(
    "value",
    ["330400202601060930000000000001", "330400abcdefABCDEF0123456789ab", "000000000000000000000000000001"],
)
def test_record_id_valid(value: str) -> None:
    assert check_record_id(value, "mdtrt_id") == value


@pytest.mark.parametrize(
    "value",
    [
        "33040020260106093000000000001",  # 29 characters
        "3304002026010609300000000000012",  # 31 characters
        "H33040100011202601060930000001",  # does not start with a region
        "33040020260106093000000000000-",
        "002000202601060930000000000001",
    ],
)
def test_record_id_invalid(value: str) -> None:
    _refusal(check_record_id, value, "setl_id")
