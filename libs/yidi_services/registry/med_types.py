"""Which opened service a medical type (``med_type``, 医疗类别) needs at the institution."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from yidi_services.registry.institutions import ServiceKind

SERVICE_FOR_MED_TYPE: Mapping[str, ServiceKind] = MappingProxyType(
    {
        "11": ServiceKind.GENERAL_OUTPATIENT,
        "12": ServiceKind.GENERAL_OUTPATIENT,
        "13": ServiceKind.GENERAL_OUTPATIENT,
        "14": ServiceKind.CHRONIC_OUTPATIENT,
        "15": ServiceKind.SPECIAL_DRUGS,
        "21": ServiceKind.INPATIENT,
        "22": ServiceKind.INPATIENT,
        "24": ServiceKind.INPATIENT,
        "41": ServiceKind.PHARMACY_PURCHASE,
    }
)
"""The service a settlement of each national ``med_type`` needs the institution to have opened.

Kept as data because provinces add local medical types (``99xx``) that map onto the same
few services. Outpatient registration (12) and emergency (13) are settled as outpatient
costs, so they need general outpatient (普通门诊) opened; trauma (22) and emergency-to-
inpatient (24) are inpatient stays (住院); chronic-disease outpatient (14) needs the disease
opened as well (门诊慢特病); pharmacy purchase (41) needs a pharmacy opened for purchases.
Special drugs (15, 门诊特药) need the service opened, at a hospital or a pharmacy alike: the
dual channel (双通道) dispenses them at designated pharmacies as at hospitals.
"""
