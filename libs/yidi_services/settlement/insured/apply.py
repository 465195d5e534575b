"""ApplySettlement at the insured node: the insured policy applied to a classified bill, atomically.

The request's seal is checked first (the treatment node must have sent it unchanged), then
its shape (every bad field at once), then the person (through the filing service's
eligibility check) and the policy in force (through the policy service). Only then does one
transaction lock the person, read their accumulators, account and family account (门诊共济:
the ledger's balance once it paid, the person record's before), settle with the core and
write the new values with the application record and the seal, so concurrent settlements of
one person apply one after the other. A dry run (pre-settlement) settles on the values as
they are and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.orm import Session

from yidi.filing.v1 import filing_service_pb2, insured_person_pb2
from yidi.settlement.v1 import insured_settlement_service_pb2 as api
from yidi.type.v1 import person_pb2
from yidi_codec.fields import Violations, proto_paths
from yidi_codec.persons import person_from_snapshot
from yidi_codec.results import item_result_from_proto, settlement_result_to_proto
from yidi_codec.types import date_to_proto
from yidi_codec.visits import visit_from_proto
from yidi_core.accumulators import Accumulators
from yidi_core.catalogue import ItemResult
from yidi_core.codes import check_region
from yidi_core.errors import DomainError, invalid
from yidi_core.money import to_fen
from yidi_core.policy import Policy
from yidi_core.settlement import Settlement, Visit, settle_classified
from yidi_runtime.integrity import Origin, Seal
from yidi_runtime.wire import timestamp_message
from yidi_services.settlement.insured import holds, ledger
from yidi_services.settlement.insured.convert import change_message, required, totals_problems
from yidi_services.settlement.insured.ledger import ACCOUNT, Movement
from yidi_services.settlement.insured.models import ApplicationState


@dataclass(frozen=True)
class ApplyCommand:
    """A checked ApplySettlement: the bill as core values, the ids it is kept under, and its seal."""

    request_id: str
    dry_run: bool
    """A pre-settlement: settled on the values as they are, recorded nowhere."""
    setl_id: str
    psn_no: str
    insutype: str
    use_account: bool
    catalogue_version: str
    visit: Visit
    treatment_admdvs: str
    fixmedins_code: str
    items: tuple[ItemResult, ...]
    origin_admdvs: str
    seal: Seal

    @property
    def year(self) -> int:
        """The accumulator year: the calendar year of the service date."""
        return self.visit.service_date.year


@dataclass(frozen=True)
class Terms:
    """What the insured place settles under: the person as filing sees them, and the policy in force."""

    snapshot: person_pb2.PersonSnapshot
    policy_version: str
    policy: Policy


def command_of(request: api.ApplySettlementRequest) -> ApplyCommand:
    """Check the request's shape and the bill's totals; every bad field is named at once."""
    violations = Violations()
    for field in ("request_id", "psn_no", "insutype"):
        violations.check(lambda f=field: required(getattr(request, f), f))
    visit = violations.check(lambda: visit_from_proto(request.facts))
    violations.check(lambda: check_region(request.facts.mdtrtarea_admvs, "facts.mdtrtarea_admvs"))
    if not request.items:
        violations.add(invalid("INVALID_ARGUMENT", "items", "a bill needs at least one classified line"))
    items = [
        violations.check(lambda i=index, line=line: item_result_from_proto(line, i))
        for index, line in enumerate(request.items)
    ]
    for problem in totals_problems(request.items, request.totals):
        violations.add(problem)
    violations.raise_any()
    assert visit is not None
    return ApplyCommand(
        request_id=request.request_id,
        dry_run=request.dry_run,
        setl_id=request.setl_id,
        psn_no=request.psn_no.strip(),
        insutype=request.insutype.strip(),
        use_account=request.use_account,
        catalogue_version=request.catalogue_version,
        visit=visit,
        treatment_admdvs=request.facts.mdtrtarea_admvs,
        fixmedins_code=request.facts.fixmedins_code,
        items=tuple(item for item in items if item is not None),
        origin_admdvs=request.route.origin_admdvs,
        seal=Seal.of(request.payload_signature),
    )


def origin(request: api.ApplySettlementRequest) -> Origin:
    """Who must have sealed the request: the treatment node it started at, which issued the settlement
    id and hosts the treatment place and the institution."""
    facts = request.facts
    node = {"route.origin_admdvs": request.route.origin_admdvs}
    if not request.dry_run:  # a pre-settlement has no settlement id yet
        node["setl_id"] = request.setl_id[:6]
    return Origin(
        node=node,
        within={
            "facts.mdtrtarea_admvs": facts.mdtrtarea_admvs,
            "facts.fixmedins_code": facts.fixmedins_code[1:7],
        },
    )


def eligibility_question(
    command: ApplyCommand, insuplc_admdvs: str
) -> filing_service_pb2.CheckEligibilityRequest:
    """The filing service's question: may this person settle this visit there and then?"""
    visit = command.visit
    return filing_service_pb2.CheckEligibilityRequest(
        person=insured_person_pb2.PersonLookup(psn_no=command.psn_no),
        insuplc_admdvs=insuplc_admdvs,
        treatment_admdvs=command.treatment_admdvs,
        service_date=date_to_proto(visit.service_date),
        med_type=visit.med_type,
        emergency=visit.emergency,
        chronic_disease=visit.chronic_disease or "",
        fixmedins_code=command.fixmedins_code,
    )


def check_insutype(command: ApplyCommand, snapshot: person_pb2.PersonSnapshot) -> None:
    """The bill must be settled under the insurance the person holds."""
    if command.insutype != snapshot.insutype:
        raise invalid(
            "INVALID_ARGUMENT",
            "insutype",
            f"person {snapshot.psn_no} is insured under {snapshot.insutype}, not {command.insutype}",
        )


def _settled(command: ApplyCommand, terms: Terms, balance_fen: int, before: Accumulators) -> Settlement:
    person = person_from_snapshot(terms.snapshot, command.use_account, balance_fen)
    try:
        return settle_classified(command.visit, person, terms.policy, command.items, before)
    except DomainError as error:
        raise proto_paths(error) from None


def _response(
    command: ApplyCommand,
    terms: Terms,
    settlement: Settlement,
    balance_fen: int,
    hold_expires_at: datetime | None,
) -> api.ApplySettlementResponse:
    """The full result, with the account's movement beside the accumulators' when the account paid."""
    result = settlement_result_to_proto(
        settlement, command.year, command.catalogue_version, terms.policy_version
    )
    if settlement.acct_pay:
        account = Movement(ACCOUNT, "", balance_fen, -to_fen(settlement.acct_pay))
        result.accumulator_changes.append(change_message(account, command.year))
    person = person_pb2.PersonSnapshot()
    person.CopyFrom(terms.snapshot)
    person.account_balance_fen = balance_fen if terms.snapshot.has_personal_account else 0
    return api.ApplySettlementResponse(
        result=result,
        person=person,
        hold_expires_at=timestamp_message(hold_expires_at),
        policy_version=terms.policy_version,
    )


def _with_family(terms: Terms, family_fen: int) -> Terms:
    """The terms with the family account (门诊共济) as the ledger holds it, not as the person record says."""
    snapshot = person_pb2.PersonSnapshot()
    snapshot.CopyFrom(terms.snapshot)
    snapshot.family_account_balance_fen = family_fen
    return replace(terms, snapshot=snapshot)


def dry_run(session: Session, command: ApplyCommand, terms: Terms) -> api.ApplySettlementResponse:
    """Pre-settlement: settle on the person's values as they are now, change nothing."""
    psn_no = terms.snapshot.psn_no
    recorded = terms.snapshot.family_account_balance_fen
    terms = _with_family(terms, ledger.family_balance_fen(session, psn_no, recorded))
    balance = ledger.balance_fen(session, psn_no)
    before = ledger.accumulators(session, psn_no, command.year)
    return _response(command, terms, _settled(command, terms, balance, before), balance, None)


def _seal_columns(seal: Seal) -> dict[str, object]:
    return {
        "digest_algorithm": seal.digest_algorithm,
        "payload_digest": seal.digest,
        "signature": seal.signature,
        "signer_certificate": seal.signer_certificate,
        "signer_admdvs": seal.signer_admdvs,
    }


def apply(
    session: Session, command: ApplyCommand, terms: Terms, now: datetime, hold_expires_at: datetime
) -> api.ApplySettlementResponse:
    """Settle under the person's lock, write accumulators, both accounts and the hold; answer the result."""
    psn_no = terms.snapshot.psn_no
    person = ledger.lock_person(session, psn_no)
    taken = holds.state_of(session, command.request_id)
    if taken is not None:
        holds.refuse_taken(command.request_id, taken)
    balance = person.balance_fen
    recorded = terms.snapshot.family_account_balance_fen
    terms = _with_family(terms, person.family_fen(recorded))
    before = ledger.accumulators(session, psn_no, command.year)
    settlement = _settled(command, terms, balance, before)
    account_delta = -to_fen(settlement.acct_pay)
    family_delta = -to_fen(settlement.acct_mulaid_pay)
    ledger.move(session, person, command.year, before, settlement.changes, account_delta)
    ledger.move_family(session, person, family_delta, recorded)
    holds.record(
        session,
        {
            "request_id": command.request_id,
            "state": ApplicationState.HELD.value,
            "psn_no": psn_no,
            "year": command.year,
            "setl_id": command.setl_id,
            "policy_version": terms.policy_version,
            "changes": [
                [change.kind.value, change.key, to_fen(change.delta)] for change in settlement.changes
            ],
            "account_delta_fen": account_delta,
            "family_delta_fen": family_delta,
            "medfee_sumamt_fen": to_fen(settlement.medfee_sumamt),
            "fund_pay_sumamt_fen": to_fen(settlement.fund_pay_sumamt),
            "acct_pay_fen": to_fen(settlement.acct_pay),
            "psn_cash_pay_fen": to_fen(settlement.psn_cash_pay),
            "created_at": now,
            "hold_expires_at": hold_expires_at,
            "origin_admdvs": command.origin_admdvs,
            "resolve_attempts": 0,
            **_seal_columns(command.seal),
        },
    )
    return _response(command, terms, settlement, balance, hold_expires_at)
