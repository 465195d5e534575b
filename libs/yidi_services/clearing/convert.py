"""Proto ↔ plain values for the settlement journal, checking every field at the edge.

Every bad field of a batch is named at once (``entries[3].fund_pay_sumamt_fen``), so a
sender fixes a refused delivery in one go. Output-only fields a sender fills in
(``record_time``, ``cleared_period``) are ignored, and left out of the content fingerprint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TypeVar

from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi.clearing.v1 import journal_pb2
from yidi.type.v1.payload_signature_pb2 import PayloadSignature
from yidi_codec.fields import Violations
from yidi_core.codes import check_institution, check_region, province_of
from yidi_core.dictionaries import NATIONAL
from yidi_core.errors import DomainError, invalid
from yidi_core.placement import journaled_nationally, pay_loc
from yidi_runtime.integrity import NodeIntegrity, Origin, Seal
from yidi_runtime.paging import page_size
from yidi_runtime.wire import moment_of, stamp_moment, timestamp_message
from yidi_services.clearing import commands
from yidi_services.clearing.journal import AMOUNT_FIELDS, MAX_ENTRIES, Amounts, Entry, Kind, Recorded

T = TypeVar("T")
MAX_ID_LENGTH = 64
MAX_SIGNATURE_BYTES = 1024
MAX_CERTIFICATE_BYTES = 8192
MAX_ALGORITHM_LENGTH = 16
_KINDS = {
    journal_pb2.JOURNAL_ENTRY_KIND_SETTLEMENT: Kind.SETTLEMENT,
    journal_pb2.JOURNAL_ENTRY_KIND_REVERSAL: Kind.REVERSAL,
}
_KIND_MESSAGES = {kind: number for number, kind in _KINDS.items()}


def _identifier(value: str, field: str, *, required: bool) -> str:
    text = value.strip()
    if required and not text:
        raise invalid("INVALID_ARGUMENT", field, "is required")
    if len(text) > MAX_ID_LENGTH:
        raise invalid("INVALID_ARGUMENT", field, f"must be at most {MAX_ID_LENGTH} characters")
    return text


def _local_region(value: str, field: str) -> str:
    province_of(value, field)
    return check_region(value, field)


def _optional(value: str, check: Callable[[str, str], str], field: str) -> str:
    return check(value, field) if value.strip() else ""


def _dictionary(name: str) -> Callable[[str, str], str]:
    return lambda value, field: NATIONAL.check(name, value, field).code


def _blob(value: bytes, field: str, limit: int = MAX_SIGNATURE_BYTES) -> bytes:
    if len(value) > limit:
        raise invalid("INVALID_ARGUMENT", field, f"must be at most {limit} bytes")
    return value


def _seal(message: PayloadSignature, where: str) -> Seal:
    """The entry's seal as stored, its sizes bounded (whether it holds is :func:`verify_seals`' question)."""
    if len(message.digest_algorithm) > MAX_ALGORITHM_LENGTH:
        raise invalid(
            "INVALID_ARGUMENT",
            f"{where}.digest_algorithm",
            f"must be at most {MAX_ALGORITHM_LENGTH} characters",
        )
    return Seal(
        message.digest_algorithm,
        _blob(message.digest, f"{where}.digest"),
        _blob(message.signature, f"{where}.signature"),
        _blob(message.signer_certificate, f"{where}.signer_certificate", MAX_CERTIFICATE_BYTES),
        _optional(message.signer_admdvs, check_region, f"{where}.signer_admdvs"),
    )


def content_sha256(message: journal_pb2.JournalEntry) -> str:
    """The fingerprint of what the sender said: the entry without the node's output-only fields.

    The seal is left out too: an entry repaired from the treatment node's records (unsealed)
    and the same entry delivered later by that node's outbox (sealed) say the same thing.
    """
    content = journal_pb2.JournalEntry()
    content.CopyFrom(message)
    content.ClearField("record_time")
    content.ClearField("cleared_period")
    content.ClearField("payload_signature")
    return hashlib.sha256(content.SerializeToString(deterministic=True)).hexdigest()


def _amount_problems(kind: Kind | None, amounts: Amounts, where: str) -> list[DomainError]:
    """A settlement's amounts are non-negative, a reversal's non-positive; both add up."""
    problems = []
    for name, fen in amounts.by_field().items():
        if kind is Kind.SETTLEMENT and fen < 0:
            problems.append(
                invalid("INVALID_ARGUMENT", f"{where}.{name}", f"must not be negative, got {fen}")
            )
        elif kind is Kind.REVERSAL and fen > 0:
            problems.append(
                invalid(
                    "INVALID_ARGUMENT", f"{where}.{name}", f"must not be positive in a reversal, got {fen}"
                )
            )
    parts = amounts.fund_pay_sumamt_fen + amounts.acct_pay_fen + amounts.psn_cash_pay_fen
    if not problems and parts != amounts.medfee_sumamt_fen:
        problems.append(
            invalid(
                "INVALID_ARGUMENT",
                f"{where}.medfee_sumamt_fen",
                f"must equal fund_pay_sumamt_fen + acct_pay_fen + psn_cash_pay_fen = {parts}, "
                f"got {amounts.medfee_sumamt_fen}",
            )
        )
    return problems


def journal_entry(message: journal_pb2.JournalEntry, index: int) -> tuple[Entry | None, list[DomainError]]:
    """One delivered entry as a checked value, or the violations naming each bad field."""
    where = f"entries[{index}]"
    violations = Violations()
    checked, problems = violations.check, violations.errors

    kind = _KINDS.get(message.kind)  # type: ignore[call-overload]
    if kind is None:
        problems.append(invalid("INVALID_ARGUMENT", f"{where}.kind", "must be SETTLEMENT or REVERSAL"))
    reverses = checked(
        lambda: _identifier(message.reverses_msgid, f"{where}.reverses_msgid", required=kind is Kind.REVERSAL)
    )
    if kind is Kind.SETTLEMENT and reverses:
        problems.append(invalid("INVALID_ARGUMENT", f"{where}.reverses_msgid", "is only for a reversal"))
    insured = checked(lambda: _local_region(message.insuplc_admdvs, f"{where}.insuplc_admdvs"))
    treatment = checked(lambda: _local_region(message.mdtrtarea_admvs, f"{where}.mdtrtarea_admvs"))
    if insured and treatment and not journaled_nationally(pay_loc(insured, treatment)):
        problems.append(
            invalid(
                "INVALID_ARGUMENT",
                f"{where}.mdtrtarea_admvs",
                f"lies in the insured province {insured[:2]}0000: the journal holds cross-province settlements",
            )
        )
    if not message.HasField("setl_time"):
        problems.append(invalid("INVALID_ARGUMENT", f"{where}.setl_time", "is required"))
    amounts = Amounts(*(getattr(message, name) for name in AMOUNT_FIELDS))
    problems += _amount_problems(kind, amounts, where)
    entry = Entry(
        msgid=checked(lambda: _identifier(message.msgid, f"{where}.msgid", required=True)),
        content_sha256=content_sha256(message),
        setl_id=checked(lambda: _identifier(message.setl_id, f"{where}.setl_id", required=True)),
        kind=kind,  # type: ignore[arg-type]
        reverses_msgid=reverses or None,
        mdtrt_id=checked(lambda: _identifier(message.mdtrt_id, f"{where}.mdtrt_id", required=False)),
        psn_no=checked(lambda: _identifier(message.psn_no, f"{where}.psn_no", required=False)),
        fixmedins_code=checked(  # required: a msgid is unique per institution, the one that sent it
            lambda: check_institution(message.fixmedins_code, f"{where}.fixmedins_code")
        ),
        insuplc_admdvs=insured,
        mdtrtarea_admvs=treatment,
        insutype=checked(lambda: _optional(message.insutype, _dictionary("insutype"), f"{where}.insutype")),
        clr_type=checked(lambda: _optional(message.clr_type, _dictionary("clr_type"), f"{where}.clr_type")),
        amounts=amounts,
        setl_time=checked(lambda: stamp_moment(message.setl_time, f"{where}.setl_time")),
        seal=checked(lambda: _seal(message.payload_signature, f"{where}.payload_signature")),
    )
    return (None, problems) if problems else (entry, [])


def _origin(source_admdvs: str, message: journal_pb2.JournalEntry, where: str) -> Origin:
    """Who must have sealed an entry: the sending node, which issued its settlement id and hosts its treatment place."""
    return Origin(
        node={"source_admdvs": source_admdvs, f"{where}.setl_id": message.setl_id[:6]},
        within={
            f"{where}.mdtrtarea_admvs": message.mdtrtarea_admvs,
            f"{where}.fixmedins_code": message.fixmedins_code[1:7],
        },
    )


def verify_seals(integrity: NodeIntegrity, request: api.AppendJournalEntriesRequest) -> None:
    """Every entry sealed, unaltered, by the treatment node sending it; else SIGNATURE_INVALID, nothing written."""
    for index, message in enumerate(request.entries):
        where = f"entries[{index}]"
        integrity.verify(
            "AppendJournalEntries", message, _origin(request.source_admdvs, message, where), where=f"{where}."
        )


def append_journal_entries(
    request: api.AppendJournalEntriesRequest, integrity: NodeIntegrity
) -> commands.AppendJournalEntries:
    """AppendJournalEntries' command: the seals verified first, then every bad field of the batch named at once.

    A seal signs an entry's bytes, so it is checked here, on the message that carries them.
    """
    verify_seals(integrity, request)
    violations = Violations()
    source = violations.check(lambda: check_region(request.source_admdvs, "source_admdvs")) or ""
    if not request.entries:
        violations.add(invalid("INVALID_ARGUMENT", "entries", "name at least one entry"))
    if len(request.entries) > MAX_ENTRIES:
        raise invalid(
            "INVALID_ARGUMENT",
            "entries",
            f"at most {MAX_ENTRIES} entries per batch, got {len(request.entries)}",
        )
    entries: list[Entry] = []
    for index, message in enumerate(request.entries):
        entry, found = journal_entry(message, index)
        violations.errors += found
        if entry is not None:
            entries.append(entry)
    violations.raise_any()
    return commands.AppendJournalEntries(request.request_id, source, tuple(entries))


def list_journal_entries(request: api.ListJournalEntriesRequest) -> commands.ListJournalEntries:
    """ListJournalEntries' query: a province code, a range that does not run backwards."""
    province = ""
    if request.admdvs:
        province = check_region(request.admdvs)
        if province_of(province) != province:
            raise invalid("INVALID_CODE", "admdvs", f"must be a province (PP0000), got {province}")
    start = moment_of(request, "start_time")
    end = moment_of(request, "end_time")
    if start is not None and end is not None and end < start:
        raise invalid("INVALID_ARGUMENT", "end_time", "must not be before start_time")
    return commands.ListJournalEntries(province, start, end, page_size(request.page_size), request.page_token)


def entry_message(recorded: Recorded) -> journal_pb2.JournalEntry:
    """A journal entry for the wire, with the time the national node recorded it."""
    entry = recorded.entry
    return journal_pb2.JournalEntry(
        msgid=entry.msgid,
        setl_id=entry.setl_id,
        kind=_KIND_MESSAGES[entry.kind],
        reverses_msgid=entry.reverses_msgid or "",
        mdtrt_id=entry.mdtrt_id,
        psn_no=entry.psn_no,
        fixmedins_code=entry.fixmedins_code,
        insuplc_admdvs=entry.insuplc_admdvs,
        mdtrtarea_admvs=entry.mdtrtarea_admvs,
        insutype=entry.insutype,
        clr_type=entry.clr_type,
        **entry.amounts.by_field(),
        setl_time=timestamp_message(entry.setl_time),
        record_time=timestamp_message(recorded.record_time),
        cleared_period=recorded.cleared_period,
        payload_signature=entry.seal.message() if entry.seal != Seal() else None,
    )
