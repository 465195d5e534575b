"""What every HIS request is checked for at the edge: ids, the envelope's region, credentials.

A node serves the institutions of its own region: an envelope whose treatment region or
institution lies elsewhere is PERMISSION_DENIED_REGION, and a record (visit, settlement,
bill) belongs to the institution that created it. Bad input is collected and refused at
once, one field violation per bad field.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from yidi.settlement.v1 import settlement_pb2, settlement_service_pb2
from yidi.type.v1 import person_pb2
from yidi_codec.fields import Violations
from yidi_core.codes import check_id_number, check_institution, check_region, institution_region
from yidi_core.dictionaries import NATIONAL
from yidi_core.errors import DomainError, invalid
from yidi_runtime import identity
from yidi_runtime.config import region_contains
from yidi_runtime.identity import CallerRole
from yidi_runtime.settlement_keys import settlement_key

MAX_REQUEST_ID = 40
"""Leaves room for the derived ids of the hops (``<id>:journal``) in a 64-character request log key."""
RECORD_ID_LENGTH = 30


def check_request_id(value: str, field_path: str = "request_id") -> str:
    """A message id (msgid): required, short enough for the ids derived from it."""
    if not value.strip() or len(value) > MAX_REQUEST_ID:
        raise invalid("INVALID_ARGUMENT", field_path, f"is required, at most {MAX_REQUEST_ID} characters")
    return value


def required_text(value: str, field_path: str, max_length: int = 30) -> str:
    """A required identifier such as ``psn_no`` or ``ipt_otp_no``."""
    text = value.strip()
    if not text or len(text) > max_length:
        raise invalid("INVALID_ARGUMENT", field_path, f"is required, at most {max_length} characters")
    return text


def record_id(region: str, request_id: str) -> str:
    """A visit, settlement or bill id: the node's region then 24 digits derived from the request id.

    Derived, not drawn: a retry of the request computes the same id (national ids are 30
    characters starting with the issuing node's region, codes.md).
    """
    digest = int.from_bytes(hashlib.sha256(request_id.encode()).digest(), "big")
    return f"{region}{digest % 10 ** (RECORD_ID_LENGTH - 6):0{RECORD_ID_LENGTH - 6}d}"


def institution_owner(fixmedins_code: str) -> str:
    """The owner of an institution's request ids in the request log: its principal's subject."""
    return f"institution/{fixmedins_code}"


@dataclass(frozen=True)
class Caller:
    """The institution calling and the treatment region it acts in, both within this node's region."""

    fixmedins_code: str
    mdtrtarea_admvs: str
    insuplc_admdvs: str

    @property
    def owner(self) -> str:
        """Whose request ids these are: the institution's (its principal's subject)."""
        return institution_owner(self.fixmedins_code)

    def key(self, request_id: str) -> str:
        """The institution's ``request_id`` as named across nodes (:func:`~yidi_runtime.settlement_keys.settlement_key`)."""
        return settlement_key(self.fixmedins_code, request_id)

    def owns(self, fixmedins_code: str, what: str) -> None:
        """Refuse access to a record another institution created."""
        if fixmedins_code != self.fixmedins_code:
            raise DomainError(
                "PERMISSION_DENIED_REGION",
                f"{what} belongs to institution {fixmedins_code}, not to {self.fixmedins_code}",
                metadata={"fixmedins_code": self.fixmedins_code},
            )


def caller(envelope: settlement_pb2.Envelope, node_region: str, field_path: str = "envelope") -> Caller:
    """The envelope checked: well-formed codes, the calling institution's own, the treatment region and
    institution within this node (only the developer of an insecure node may name any institution)."""
    problems = Violations()
    code = problems.check(lambda: check_institution(envelope.fixmedins_code, f"{field_path}.fixmedins_code"))
    area = problems.check(lambda: check_region(envelope.mdtrtarea_admvs, f"{field_path}.mdtrtarea_admvs"))
    insured = envelope.insuplc_admdvs.strip()
    if insured:
        problems.check(lambda: check_region(insured, f"{field_path}.insuplc_admdvs"))
    problems.raise_any()
    assert code is not None and area is not None
    principal = identity.acting()
    if principal.role is not CallerRole.DEVELOPER and code != principal.name:
        raise DomainError(
            "PERMISSION_DENIED_REGION",
            f"{principal.subject} may act only as itself, not as institution {code}",
            metadata={"field": f"{field_path}.fixmedins_code", "caller": principal.subject},
        )
    for region, what in ((area, "treatment region"), (institution_region(code), "institution's region")):
        if not region_contains(node_region, region):
            raise DomainError(
                "PERMISSION_DENIED_REGION",
                f"the {what} {region} lies outside this node's region {node_region}",
                metadata={"admdvs": region, "node_region": node_region},
            )
    return Caller(code, area, insured)


def check_credential(credential: person_pb2.Credential, field_path: str = "credential") -> None:
    """A credential as presented (1101): known type, a number, a card serial for a card."""
    problems = Violations()
    kind = credential.mdtrt_cert_type.strip()
    problems.check(lambda: NATIONAL.check("mdtrt_cert_type", kind, f"{field_path}.mdtrt_cert_type"))
    if kind == "02":
        problems.check(lambda: check_id_number(credential.mdtrt_cert_no, f"{field_path}.mdtrt_cert_no"))
    else:
        problems.check(lambda: required_text(credential.mdtrt_cert_no, f"{field_path}.mdtrt_cert_no", 64))
    if kind == "03" and not credential.card_sn.strip():
        problems.add(invalid("INVALID_ARGUMENT", f"{field_path}.card_sn", "is required for a card"))
    problems.raise_any()


def insured_region(request: settlement_service_pb2.VerifyPersonRequest, caller: Caller) -> str:
    """Where the person of 1101 is insured: as given, else the envelope's, else an ID card's first 6 digits.

    The credential and planned medical type are checked on the way.
    """
    check_credential(request.credential)
    credential = request.credential
    insured = (
        request.insuplc_admdvs.strip()
        or caller.insuplc_admdvs
        or (credential.mdtrt_cert_no.strip()[:6] if credential.mdtrt_cert_type.strip() == "02" else "")
    )
    if not insured:
        raise invalid(
            "INVALID_ARGUMENT", "insuplc_admdvs", "is required unless the credential is a resident ID card"
        )
    if request.med_type:
        NATIONAL.check("med_type", request.med_type, "med_type", region=caller.mdtrtarea_admvs)
    return check_region(insured, "insuplc_admdvs")
