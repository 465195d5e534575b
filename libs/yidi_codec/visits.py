"""Visit facts (``yidi.type.v1.VisitFacts``) ↔ the core's :class:`~yidi_core.settlement.Visit`.

:func:`visit_from_proto` is the one way a core visit is made from the wire: checked, for a
visit another node or an estimate request sends; unchecked, for facts this node checked
when it registered the visit and has stored since.
"""

from __future__ import annotations

from yidi.type.v1 import visit_pb2
from yidi_codec.types import date_from_proto, date_to_proto
from yidi_core.codes import PHARMACY_PREFIX, check_chronic_disease, check_diagnosis
from yidi_core.dictionaries import NATIONAL
from yidi_core.errors import invalid
from yidi_core.money import check_fen, from_fen, to_fen
from yidi_core.placement import is_inpatient
from yidi_core.settlement import Visit


def _code(dictionary: str, value: str, field: str) -> str:
    if not value:
        raise invalid("INVALID_ARGUMENT", field, "is required")
    return NATIONAL.check(dictionary, value.strip(), field).code


def visit_from_proto(facts: visit_pb2.VisitFacts, path: str = "facts", *, checked: bool = True) -> Visit:
    """The core's visit; ``checked`` refuses the first bad field (named ``<path>.<field>``)
    as the case format does, unchecked only the service date must be a date."""
    if not checked:
        return Visit(
            med_type=facts.med_type,
            service_date=date_from_proto(facts.service_date, f"{path}.service_date"),
            institution_level=facts.institution_level,
            diagnoses=tuple(facts.diagnoses),
            chronic_disease=facts.chronic_disease or None,
            emergency=facts.emergency,
            deductible_paid_in_stay=from_fen(facts.stay_deductible_paid_fen),
        )
    at_pharmacy = facts.fixmedins_code.startswith(PHARMACY_PREFIX) and not facts.institution_level
    return Visit(
        med_type=_code("med_type", facts.med_type, f"{path}.med_type"),
        service_date=date_from_proto(facts.service_date, f"{path}.service_date"),
        institution_level=""  # a pharmacy has no level: only a rule for any level ("*") applies
        if at_pharmacy
        else _code("institution_level", facts.institution_level, f"{path}.institution_level"),
        diagnoses=tuple(
            check_diagnosis(code, f"{path}.diagnoses[{index}]") for index, code in enumerate(facts.diagnoses)
        ),
        chronic_disease=check_chronic_disease(facts.chronic_disease, f"{path}.chronic_disease")
        if facts.chronic_disease
        else None,
        emergency=facts.emergency,
        deductible_paid_in_stay=from_fen(_stay_deductible_paid(facts, path)),
    )


def _stay_deductible_paid(facts: visit_pb2.VisitFacts, path: str) -> int:
    """What earlier parts of a stay paid of its deductible: only an inpatient stay has parts."""
    field = f"{path}.stay_deductible_paid_fen"
    paid = check_fen(facts.stay_deductible_paid_fen, field)
    if paid and not is_inpatient(facts.med_type.strip()):
        raise invalid("INVALID_ARGUMENT", field, "only an inpatient stay is settled in parts")
    return paid


def visit_to_proto(visit: Visit) -> visit_pb2.VisitFacts:
    """The visit's facts for the wire (institution and region are the caller's to add)."""
    return visit_pb2.VisitFacts(
        med_type=visit.med_type,
        service_date=date_to_proto(visit.service_date),
        institution_level=visit.institution_level,
        diagnoses=visit.diagnoses,
        chronic_disease=visit.chronic_disease or "",
        emergency=visit.emergency,
        stay_deductible_paid_fen=to_fen(visit.deductible_paid_in_stay),
    )
