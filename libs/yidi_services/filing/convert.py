"""Proto messages ↔ the filing service's plain values; no decisions are made here.

Personal data leaves this node masked (ID numbers and names) except in GetInsuredPerson,
which the insured place itself calls.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from yidi.filing.v1 import filing_pb2 as pb
from yidi.filing.v1 import filing_service_pb2 as api
from yidi.filing.v1 import insured_person_pb2 as person_pb
from yidi.type.v1 import filing_category_pb2, person_pb2
from yidi_core.codes import mask_id_number
from yidi_runtime.logs import mask_name
from yidi_runtime.wire import date_message, day_of, timestamp_message
from yidi_services.filing.eligibility import Answer
from yidi_services.filing.filings import Applicant, Category, Filing, Materials
from yidi_services.filing.persons import Gap, Person, PersonDraft, PersonRef
from yidi_services.filing.queue import PendingItem
from yidi_services.filing.rechecks import Recheck
from yidi_services.filing.rules import FilingRules


def enum_name(enum: EnumTypeWrapper, prefix: str, number: int) -> str:
    """``FILING_CHANNEL_WINDOW`` → ``window``; '' when unspecified, the bare number when unknown."""
    if number == 0:
        return ""
    try:
        return enum.Name(number).removeprefix(prefix).lower()
    except ValueError:
        return str(number)


def _enum_number(enum: EnumTypeWrapper, prefix: str, name: str) -> Any:
    return enum.Value(prefix + name.upper())


def category_name(number: int) -> str:
    """A FilingCategory as the project's category name."""
    return enum_name(filing_category_pb2.FilingCategory, "FILING_CATEGORY_", number)


def channel_name(number: int) -> str:
    """A FilingChannel as the service's channel name."""
    return enum_name(pb.FilingChannel, "FILING_CHANNEL_", number)


def state_name(number: int) -> str:
    """A FilingState as the service's state name."""
    return enum_name(pb.FilingState, "FILING_STATE_", number)


def decision_name(number: int) -> str:
    """A ReviewDecision as ``approve`` or ``reject``."""
    return enum_name(api.ReviewDecision, "REVIEW_DECISION_", number)


def person_ref(lookup: person_pb.PersonLookup, field: str = "person") -> PersonRef:
    """Whichever way the request names the person."""
    kind = lookup.WhichOneof("by")
    if kind == "credential":
        credential = lookup.credential
        return PersonRef(field, certno=credential.mdtrt_cert_no, credential_type=credential.mdtrt_cert_type)
    if kind == "certno":
        return PersonRef(field, certno=lookup.certno)
    if kind == "psn_no":
        return PersonRef(field, psn_no=lookup.psn_no)
    return PersonRef(field)


def person_draft(message: person_pb.InsuredPerson, index: int) -> PersonDraft:
    """An imported person as given."""
    field = f"persons[{index}]"
    return PersonDraft(
        psn_no=message.psn_no,
        certno=message.certno,
        psn_name=message.psn_name,
        insuplc_admdvs=message.insuplc_admdvs,
        insutype=message.insutype,
        psn_type=message.psn_type,
        insured_since=day_of(message.insured_since, f"{field}.insured_since"),
        gaps=tuple(
            Gap(
                day_of(gap.start_date, f"{field}.contribution_gaps[{number}].start_date", required=True),  # type: ignore[arg-type]
                day_of(gap.end_date, f"{field}.contribution_gaps[{number}].end_date"),
            )
            for number, gap in enumerate(message.contribution_gaps)
        ),
        credential_activated=message.credential_activated,
        has_personal_account=message.has_personal_account,
        emp_name=message.emp_name,
        low_income=message.low_income,
        civil_servant=message.civil_servant,
        assistance_category=message.assistance_category,
        family_account_balance_fen=message.family_account_balance_fen,
    )


def insured_person(person: Person, *, masked: bool) -> person_pb.InsuredPerson:
    """A person for the wire, masked in list views."""
    return person_pb.InsuredPerson(
        psn_no=person.psn_no,
        certno=mask_id_number(person.certno) if masked else person.certno,
        psn_name=mask_name(person.psn_name) if masked else person.psn_name,
        insuplc_admdvs=person.insuplc_admdvs,
        insutype=person.insutype,
        psn_type=person.psn_type,
        insured_since=date_message(person.insured_since),
        contribution_gaps=[
            person_pb.ContributionGap(start_date=date_message(gap.start), end_date=date_message(gap.end))
            for gap in person.gaps
        ],
        credential_activated=person.credential_activated,
        has_personal_account=person.has_personal_account,
        emp_name=person.emp_name,
        low_income=person.low_income,
        civil_servant=person.civil_servant,
        assistance_category=person.assistance_category,
        family_account_balance_fen=person.family_account_balance_fen,
        create_time=timestamp_message(person.create_time),
        update_time=timestamp_message(person.update_time),
    )


def applicant(message: pb.Applicant) -> Applicant:
    """The applicant as given."""
    return Applicant(
        on_behalf=message.on_behalf,
        agent_name=message.agent_name,
        agent_certno=message.agent_certno,
        relation=message.relation,
        tel=message.tel,
    )


def materials(message: pb.FilingMaterials) -> Materials:
    """Materials as given (the completion deadline is the node's to set)."""
    return Materials(
        personal_commitment=message.personal_commitment,
        referral_proof_id=message.referral_proof_id.strip(),
        residence_proof_id=message.residence_proof_id.strip(),
        employer_proof_id=message.employer_proof_id.strip(),
        to_complete_later=message.to_complete_later,
    )


def filing(value: Filing) -> pb.Filing:
    """A filing for the wire, the ID numbers masked."""
    return pb.Filing(
        filing_id=value.filing_id,
        psn_no=value.psn_no,
        certno_masked=mask_id_number(value.certno),
        insuplc_admdvs=value.insuplc_admdvs,
        treatment_admdvs=value.treatment_admdvs,
        category=_enum_number(filing_category_pb2.FilingCategory, "FILING_CATEGORY_", value.category.value),
        channel=_enum_number(pb.FilingChannel, "FILING_CHANNEL_", value.channel.value),
        applicant=pb.Applicant(
            on_behalf=value.applicant.on_behalf,
            agent_name=value.applicant.agent_name,
            agent_certno=mask_id_number(value.applicant.agent_certno) if value.applicant.agent_certno else "",
            relation=value.applicant.relation,
            tel=value.applicant.tel,
        ),
        start_date=date_message(value.start_date),
        end_date=date_message(value.end_date),
        materials=pb.FilingMaterials(
            personal_commitment=value.materials.personal_commitment,
            referral_proof_id=value.materials.referral_proof_id,
            residence_proof_id=value.materials.residence_proof_id,
            employer_proof_id=value.materials.employer_proof_id,
            to_complete_later=value.materials.to_complete_later,
            complete_by=date_message(value.materials.complete_by),
        ),
        state=_enum_number(pb.FilingState, "FILING_STATE_", value.state.value),
        state_reason=value.state_reason,
        review_deadline=date_message(value.review_deadline),
        supersedes_filing_id=value.supersedes_filing_id,
        superseded_by_filing_id=value.superseded_by_filing_id,
        designated_institutions=list(value.designated_institutions),
        retroactive=value.retroactive,
        submit_time=timestamp_message(value.submit_time),
        decide_time=timestamp_message(value.decide_time),
        reviewer=value.reviewer,
        rules_version=value.rules_version,
    )


def recheck_state_name(number: int) -> str:
    """A FilingRecheckState as the service's recheck state name."""
    return enum_name(api.FilingRecheckState, "FILING_RECHECK_STATE_", number)


def recheck_decision_name(number: int) -> str:
    """A RecheckDecision as ``keep``, ``cancel`` or ``require_materials``."""
    return enum_name(api.RecheckDecision, "RECHECK_DECISION_", number)


def recheck(value: Recheck) -> api.FilingRecheck:
    """A recheck for the wire, its filing masked."""
    return api.FilingRecheck(
        filing=filing(value.filing),
        old_rules_version=value.old_rules_version,
        new_rules_version=value.new_rules_version,
        failures=[
            api.RecheckFailure(reason=failure.reason, field=failure.field, message=failure.message)
            for failure in value.failures
        ],
        state=_enum_number(api.FilingRecheckState, "FILING_RECHECK_STATE_", value.state.value),
        create_time=timestamp_message(value.create_time),
        decision_reason=value.decision_reason,
        decided_by=value.decided_by,
        decide_time=timestamp_message(value.decide_time),
    )


def pending_review(item: PendingItem) -> api.PendingReview:
    """A queue item for the wire."""
    return api.PendingReview(
        filing=filing(item.filing), working_days_left=item.working_days_left, overdue=item.overdue
    )


def rules_value(message: pb.FilingRules) -> FilingRules:
    """Rules as given."""
    return FilingRules(
        insuplc_admdvs=message.insuplc_admdvs,
        auto_approve=message.auto_approve,
        review_deadline_working_days=message.review_deadline_working_days,
        holidays=tuple(
            day_of(day, f"rules.holidays[{i}]", required=True)  # type: ignore[misc]
            for i, day in enumerate(message.holidays)
        ),
        working_weekends=tuple(
            day_of(day, f"rules.working_weekends[{i}]", required=True)  # type: ignore[misc]
            for i, day in enumerate(message.working_weekends)
        ),
        commitment_accepted=message.commitment_accepted,
        referral_proof_waived=message.referral_proof_waived,
        incomplete_materials_accepted=message.incomplete_materials_accepted,
        complete_later_working_days=message.complete_later_working_days,
        temporary_validity_months=message.temporary_validity_months,
        long_term_min_months=message.long_term_min_months,
        outpatient_designations_required=message.outpatient_designations_required,
        outpatient_designation_levels=tuple(level.strip() for level in message.outpatient_designation_levels),
        effective_date=day_of(message.effective_date, "rules.effective_date"),
    )


def rules_message(value: FilingRules) -> pb.FilingRules:
    """Rules for the wire."""
    return pb.FilingRules(
        insuplc_admdvs=value.insuplc_admdvs,
        auto_approve=value.auto_approve,
        review_deadline_working_days=value.review_deadline_working_days,
        holidays=[date_message(day) for day in value.holidays],
        working_weekends=[date_message(day) for day in value.working_weekends],
        commitment_accepted=value.commitment_accepted,
        referral_proof_waived=value.referral_proof_waived,
        incomplete_materials_accepted=value.incomplete_materials_accepted,
        complete_later_working_days=value.complete_later_working_days,
        temporary_validity_months=value.temporary_validity_months,
        long_term_min_months=value.long_term_min_months,
        outpatient_designations_required=value.outpatient_designations_required,
        outpatient_designation_levels=list(value.outpatient_designation_levels),
        effective_date=date_message(value.effective_date),
        version=value.label if value.version else "",
    )


def snapshot(answer: Answer) -> person_pb2.PersonSnapshot:
    """The eligible person as the treatment place sees them: masked, with category and filing."""
    person, covering = answer.person, answer.filing
    message = person_pb2.PersonSnapshot(
        psn_no=person.psn_no,
        certno_masked=mask_id_number(person.certno),
        psn_name_masked=mask_name(person.psn_name),
        insuplc_admdvs=person.insuplc_admdvs,
        insutype=person.insutype,
        psn_type=person.psn_type,
        contribution_status=person_pb2.CONTRIBUTION_STATUS_ACTIVE,
        credential_activated=person.credential_activated,
        has_personal_account=person.has_personal_account,
        filing_category=_category_number(answer.category),
        low_income=person.low_income,
        civil_servant=person.civil_servant,
        assistance_category=person.assistance_category,
        family_account_balance_fen=person.family_account_balance_fen,
    )
    if covering is not None:
        message.filing_id = covering.filing_id
        message.filing_start_date.CopyFrom(date_message(covering.start_date))
        if covering.end_date is not None:
            message.filing_end_date.CopyFrom(date_message(covering.end_date))
    return message


def _category_number(category: Category | None) -> Any:
    if category is None:
        return filing_category_pb2.FILING_CATEGORY_UNSPECIFIED
    return _enum_number(filing_category_pb2.FilingCategory, "FILING_CATEGORY_", category.value)
