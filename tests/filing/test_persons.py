"""Insured persons: enrolment all-or-nothing, masked views, contribution gaps, credentials, masked logs."""

from __future__ import annotations

import io
import json

import grpc
from filing_builders import SHENZHEN, certno, day, enrol, person, refusal, request_id

from yidi.filing.v1 import filing_service_pb2 as api
from yidi.filing.v1 import filing_service_pb2_grpc as api_grpc
from yidi.filing.v1 import insured_person_pb2 as person_pb
from yidi.type.v1 import person_pb2
from yidi_runtime.logs import configure_logging


def test_enrolment_assigns_person_numbers_and_updates_on_the_id_number(
    stub: api_grpc.FilingServiceStub,
) -> None:
    first, second = certno(SHENZHEN, 1), certno(SHENZHEN, 2)
    numbers = enrol(stub, person(first, SHENZHEN), person(second, SHENZHEN, insutype="390", psn_type="1501"))
    assert all(number.startswith(SHENZHEN) and len(number) == 30 for number in numbers)

    again = stub.ImportInsuredPersons(
        api.ImportInsuredPersonsRequest(
            request_id=request_id(), persons=[person(first, SHENZHEN, name="张三", emp_name="深圳某公司")]
        )
    )
    assert (again.created_count, again.updated_count, list(again.psn_nos)) == (0, 1, numbers[:1])

    full = stub.GetInsuredPerson(
        api.GetInsuredPersonRequest(person=person_pb.PersonLookup(psn_no=numbers[0]))
    )
    assert (full.person.certno, full.person.psn_name, full.person.emp_name) == (first, "张三", "深圳某公司")
    assert full.person.has_personal_account  # employee insurance carries an account
    resident = stub.GetInsuredPerson(
        api.GetInsuredPersonRequest(person=person_pb.PersonLookup(certno=second))
    )
    assert not resident.person.has_personal_account


def test_a_bad_row_stores_nothing_and_never_echoes_the_full_id_number(
    stub: api_grpc.FilingServiceStub,
) -> None:
    good = certno(SHENZHEN, 3)
    broken = good[:-1] + ("0" if good[-1] != "0" else "1")
    code, reason, fields, message = refusal(
        lambda: enrol(stub, person(good, SHENZHEN), person(broken, SHENZHEN, insutype="392", psn_type="9"))
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CODE")
    assert fields == ["persons[1].certno", "persons[1].insutype", "persons[1].psn_type"]
    assert broken not in message and broken[:6] + "********" + broken[-4:] in message
    _, reason, *_ = refusal(
        lambda: stub.GetInsuredPerson(api.GetInsuredPersonRequest(person=person_pb.PersonLookup(certno=good)))
    )
    assert reason == "PERSON_NOT_FOUND"


def test_two_gaps_of_one_person_never_start_on_the_same_day(stub: api_grpc.FilingServiceStub) -> None:
    number = certno(SHENZHEN, 4)
    gaps = [
        {"start_date": day("2026-01-01"), "end_date": day("2026-03-31")},
        {"start_date": day("2026-01-01"), "end_date": day("2026-02-28")},
    ]
    code, reason, fields, _ = refusal(lambda: enrol(stub, person(number, SHENZHEN, contribution_gaps=gaps)))
    assert (code, reason, fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        ["persons[0].contribution_gaps[1].start_date"],
    )


def test_lists_are_masked_and_paged(stub: api_grpc.FilingServiceStub) -> None:
    enrol(stub, *(person(certno(SHENZHEN, n), SHENZHEN, name="李四") for n in range(5)))
    enrol(stub, person(certno("360100", 9), "360100"))
    seen, token = [], ""
    while True:
        page = stub.ListInsuredPersons(
            api.ListInsuredPersonsRequest(insuplc_admdvs="440000", page_size=2, page_token=token)
        )
        seen += page.persons
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == 5 and all(p.psn_name == "李*" and "********" in p.certno for p in seen)
    assert [p.psn_no for p in seen] == sorted(p.psn_no for p in seen)
    _, reason, fields, _ = refusal(
        lambda: stub.ListInsuredPersons(
            api.ListInsuredPersonsRequest(insuplc_admdvs="360000", page_token="x")
        )
    )
    assert (reason, fields) == ("INVALID_ARGUMENT", ["page_token"])


def test_contribution_gaps_open_and_close_and_credentials_activate(stub: api_grpc.FilingServiceStub) -> None:
    number = certno(SHENZHEN, 4)
    enrol(stub, person(number, SHENZHEN, credential_activated=False))
    lookup = person_pb.PersonLookup(certno=number)

    def update(**fields: object) -> person_pb.InsuredPerson:
        request = api.UpdateInsuredStatusRequest(request_id=request_id(), person=lookup, **fields)
        return stub.UpdateInsuredStatus(request).person

    opened = update(interrupted_from=day("2026-01-01"))
    assert [(g.start_date.month, g.HasField("end_date")) for g in opened.contribution_gaps] == [(1, False)]
    _, reason, fields, _ = refusal(lambda: update(interrupted_from=day("2026-02-01")))
    assert (reason, fields) == ("INVALID_ARGUMENT", ["interrupted_from"])
    closed = update(resumed_on=day("2026-02-28"), activate_credential=True)
    assert closed.contribution_gaps[0].end_date == day("2026-02-28") and closed.credential_activated
    _, reason, fields, _ = refusal(lambda: update(resumed_on=day("2026-03-01")))
    assert (reason, fields) == ("INVALID_ARGUMENT", ["resumed_on"])


def test_a_credential_lookup_finds_the_person_by_the_number_on_it(stub: api_grpc.FilingServiceStub) -> None:
    number = certno(SHENZHEN, 5)
    enrol(stub, person(number, SHENZHEN))
    card = person_pb.PersonLookup(
        credential=person_pb2.Credential(mdtrt_cert_type="03", mdtrt_cert_no=number)
    )
    assert stub.GetInsuredPerson(api.GetInsuredPersonRequest(person=card)).person.certno == number
    wrong_type = person_pb.PersonLookup(
        credential=person_pb2.Credential(mdtrt_cert_type="09", mdtrt_cert_no=number)
    )
    _, reason, fields, _ = refusal(
        lambda: stub.GetInsuredPerson(api.GetInsuredPersonRequest(person=wrong_type))
    )
    assert (reason, fields) == ("INVALID_CODE", ["person.credential.mdtrt_cert_type"])


def test_logs_mask_id_numbers_and_names(stub: api_grpc.FilingServiceStub) -> None:
    from filing_builders import application

    logs = io.StringIO()
    configure_logging("info", "json", logs)
    try:
        number = certno(SHENZHEN, 6)
        enrol(stub, person(number, SHENZHEN, name="王小明"))
        stub.CreateFiling(application(number, SHENZHEN, "110000"))
        stub.CreateFiling(application(number[:-1] + "Y", SHENZHEN, "110000"))
    except grpc.RpcError:
        pass
    finally:
        configure_logging("info", "json", io.StringIO())
    lines = [json.loads(line) for line in logs.getvalue().splitlines() if line.strip()]
    decided = [line for line in lines if line["event"] == "filing application decided"]
    assert len(decided) == 1 and decided[0]["psn_name"] == "王**"
    assert decided[0]["certno"] == number[:6] + "********" + number[-4:]
    text = json.dumps(lines, ensure_ascii=False)
    assert number not in text and "王小明" not in text
    assert [line["reason"] for line in lines if line["event"] == "rpc"][-1] == "INVALID_CODE"
