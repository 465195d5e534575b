"""What the insured side asks the other services of its own node: persons and policies.

The filing service owns persons and filings and the catalogue service owns policies
(DESIGN.md principle 2), so the insured side asks them through their RPCs, on this node
itself (in process: :mod:`yidi_runtime.local_calls`), never reading their tables. A refusal
passes through with its reason (NOT_FILED, CONTRIBUTION_INTERRUPTED, NO_POLICY_VERSION …). Policies are read once per
version (:class:`~yidi_codec.policies.ParsedPolicies`, as Estimate reads them): a version never
changes once imported.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from yidi.catalogue.v1 import policy_service_pb2, policy_service_pb2_grpc
from yidi.filing.v1 import filing_service_pb2, filing_service_pb2_grpc, insured_person_pb2
from yidi.type.v1 import filing_category_pb2, person_pb2
from yidi_codec.policies import ParsedPolicies
from yidi_codec.types import date_from_proto
from yidi_core.errors import DomainError, invalid
from yidi_core.policy import Policy
from yidi_runtime.config import region_contains
from yidi_runtime.peers import PeerClient
from yidi_runtime.routing import Router
from yidi_runtime.wire import date_message

WITHOUT_FILING = frozenset(
    {"NOT_FILED", "FILING_EXPIRED", "FILING_PENDING_REVIEW", "INSTITUTION_NOT_DESIGNATED"}
)
"""Eligibility's refusals that mean no filing covers the visit (or not at that institution: unreferred care)."""


class InsuredPlace:
    """This node's filing and policy services, as the insured side of settlement needs them."""

    def __init__(self, router: Router) -> None:
        self._router = router
        self._region = router.settings.region
        self._policies = ParsedPolicies()

    def _own(self) -> PeerClient:
        return self._router.toward(self._region)

    def eligibility(self, request: filing_service_pb2.CheckEligibilityRequest) -> person_pb2.PersonSnapshot:
        """FilingService.CheckEligibility: the snapshot, or the filing service's refusal as is."""
        client = self._own()
        stub = client.stub(filing_service_pb2_grpc.FilingServiceStub)
        answer: filing_service_pb2.CheckEligibilityResponse = client.call(stub.CheckEligibility, request)
        return answer.person

    def filing_status(
        self, question: filing_service_pb2.CheckEligibilityRequest
    ) -> person_pb2.PersonSnapshot:
        """The person as eligibility sees them, with the filing category only when a filing record covers
        the visit (UNSPECIFIED when none does: not filed, expired, pending, an outpatient institution
        the filing does not designate, or an emergency without a record).

        For a bill paid in full elsewhere: the missing filing is no refusal but the category the
        policy's unfiled rates apply to; every other refusal (an unknown person, interrupted
        contributions …) still stands.
        """
        try:
            snapshot = self.eligibility(question)
        except DomainError as refusal:
            if refusal.reason_code not in WITHOUT_FILING:
                raise
            return self._without_filing(question, "the bill's patient")
        if not snapshot.filing_id:
            snapshot.filing_category = filing_category_pb2.FILING_CATEGORY_UNSPECIFIED
        return snapshot

    def _without_filing(
        self, question: filing_service_pb2.CheckEligibilityRequest, described: str
    ) -> person_pb2.PersonSnapshot:
        """The person eligibility refused for want of a filing, as a snapshot without a category."""
        person = self._person(question.person, question.insuplc_admdvs, described)
        return person_pb2.PersonSnapshot(
            psn_no=person.psn_no,
            insuplc_admdvs=person.insuplc_admdvs,
            insutype=person.insutype,
            psn_type=person.psn_type,
            contribution_status=person_pb2.CONTRIBUTION_STATUS_ACTIVE,
            credential_activated=person.credential_activated,
            has_personal_account=person.has_personal_account,
            low_income=person.low_income,
            civil_servant=person.civil_servant,
            assistance_category=person.assistance_category,
            family_account_balance_fen=person.family_account_balance_fen,
        )

    def direct_person(
        self,
        question: filing_service_pb2.CheckEligibilityRequest,
        check: Callable[[person_pb2.PersonSnapshot], None] = lambda snapshot: None,
    ) -> tuple[person_pb2.PersonSnapshot, tuple[str, Policy] | None]:
        """Whom a direct settlement settles: eligibility's person, ``check``ed once eligibility holds.

        Care no filing covers (:data:`WITHOUT_FILING`) settles directly only where the policy in force
        says so (``unfiled_direct``): the person then has no category, so the core pays the policy's
        factor for unfiled care, and that policy (version id and value) comes with them. Anywhere
        else (no policy in force included) eligibility's refusal stands, as it always did.
        """
        try:
            snapshot = self.eligibility(question)
        except DomainError as refusal:
            if refusal.reason_code not in WITHOUT_FILING:
                raise
            snapshot = self._without_filing(question, "the patient")
            day = date_from_proto(question.service_date, "service_date")
            try:
                found = self.policy(snapshot.insuplc_admdvs, snapshot.insutype, day)
            except DomainError as missing:
                if missing.reason_code != "NO_POLICY_VERSION":
                    raise
                raise refusal from None
            if not found[1].unfiled_direct:
                raise
            check(snapshot)
            return snapshot, found
        check(snapshot)
        return snapshot, None

    def direct_terms(
        self,
        question: filing_service_pb2.CheckEligibilityRequest,
        check: Callable[[person_pb2.PersonSnapshot], None],
    ) -> tuple[person_pb2.PersonSnapshot, str, Policy]:
        """:meth:`direct_person`, and the version id and value of the policy in force where they are insured."""
        snapshot, found = self.direct_person(question, check)
        day = date_from_proto(question.service_date, "service_date")
        version, policy = found or self.policy(snapshot.insuplc_admdvs, snapshot.insutype, day)
        return snapshot, version, policy

    def _person(
        self, lookup: insured_person_pb2.PersonLookup, insuplc_admdvs: str, described: str, **metadata: str
    ) -> insured_person_pb2.InsuredPerson:
        """The person filing knows by ``lookup``, insured in ``insuplc_admdvs`` when given (else PERSON_NOT_FOUND)."""
        client = self._own()
        stub = client.stub(filing_service_pb2_grpc.FilingServiceStub)
        found: filing_service_pb2.GetInsuredPersonResponse = client.call(
            stub.GetInsuredPerson, filing_service_pb2.GetInsuredPersonRequest(person=lookup)
        )
        if insuplc_admdvs and not region_contains(insuplc_admdvs, found.person.insuplc_admdvs):
            raise DomainError(
                "PERSON_NOT_FOUND",
                f"{described} is not insured in {insuplc_admdvs}",
                metadata={**metadata, "insuplc_admdvs": insuplc_admdvs},
            )
        return found.person

    def ensure_person(self, psn_no: str, insuplc_admdvs: str = "") -> None:
        """PERSON_NOT_FOUND unless filing knows ``psn_no`` (insured in ``insuplc_admdvs``, when given)."""
        lookup = insured_person_pb2.PersonLookup(psn_no=psn_no)
        self._person(lookup, insuplc_admdvs, f"person {psn_no}", psn_no=psn_no)

    def identify(
        self, credential: person_pb2.Credential, insuplc_admdvs: str, psn_no: str
    ) -> person_pb2.PersonSnapshot:
        """Who the credential names, if it is ``psn_no`` (else INVALID_ARGUMENT naming ``psn_no``).

        Only identity: no filing or contribution is asked, as a stay may be registered before
        it is filed. The answer says which person, not where they may settle.
        """
        person = self._person(
            insured_person_pb2.PersonLookup(credential=credential), insuplc_admdvs, "the credential's holder"
        )
        if person.psn_no != psn_no.strip():
            raise invalid(
                "INVALID_ARGUMENT",
                "psn_no",
                "is not the person the credential names: take the person number from VerifyPerson",
            )
        return person_pb2.PersonSnapshot(
            psn_no=person.psn_no,
            insuplc_admdvs=person.insuplc_admdvs,
            insutype=person.insutype,
            psn_type=person.psn_type,
        )

    def policy(self, insuplc_admdvs: str, insutype: str, day: date) -> tuple[str, Policy]:
        """The policy version in force on ``day`` (NO_POLICY_VERSION when none): its id and value."""
        client = self._own()
        stub = client.stub(policy_service_pb2_grpc.PolicyServiceStub)
        answer: policy_service_pb2.GetPolicyResponse = client.call(
            stub.GetPolicy,
            policy_service_pb2.GetPolicyRequest(
                insuplc_admdvs=insuplc_admdvs, insutype=insutype, date=date_message(day)
            ),
        )
        return answer.policy.version_id, self._policies.parsed(answer.policy)
