"""Stubs and import helpers for the catalogue and policy service tests."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import date

import grpc
import pytest
from google.type.date_pb2 import Date

from yidi.catalogue.v1 import (
    catalogue_pb2,
    catalogue_service_pb2,
    catalogue_service_pb2_grpc,
    policy_service_pb2,
    policy_service_pb2_grpc,
)

HEADER = (
    "code,name,kind,chrgitm_lv,selfpay_prop,pric_uplmt_amt,"
    "restriction_med_types,restriction_diagnosis_prefixes,valid_from,valid_to\n"
)
_IDS = itertools.count(1)


def day(text: str) -> Date:
    """A wire date from ``yyyy-mm-dd``."""
    value = date.fromisoformat(text)
    return Date(year=value.year, month=value.month, day=value.day)


def request_id() -> str:
    """A fresh message id."""
    return f"110000000000202601010000{next(_IDS):04d}"[-30:]


@pytest.fixture
def catalogue(channel: grpc.Channel) -> catalogue_service_pb2_grpc.CatalogueServiceStub:
    return catalogue_service_pb2_grpc.CatalogueServiceStub(channel)


@pytest.fixture
def policy(channel: grpc.Channel) -> policy_service_pb2_grpc.PolicyServiceStub:
    return policy_service_pb2_grpc.PolicyServiceStub(channel)


ImportCsv = Callable[..., catalogue_service_pb2.ImportCatalogueResponse]


@pytest.fixture
def import_csv(catalogue: catalogue_service_pb2_grpc.CatalogueServiceStub) -> ImportCsv:
    """Import CSV rows (without header) as a version; chunks split lines on purpose."""

    def run(admdvs: str, effective: str, rows: str, *, rid: str | None = None, chunk: int = 7):
        layer = (
            catalogue_pb2.CATALOGUE_LAYER_NATIONAL_BASE
            if admdvs == "000000"
            else catalogue_pb2.CATALOGUE_LAYER_PROVINCIAL_OVERLAY
        )
        content = (HEADER + rows).encode()
        messages = [
            catalogue_service_pb2.ImportCatalogueRequest(
                header=catalogue_service_pb2.ImportCatalogueHeader(
                    request_id=rid or request_id(), admdvs=admdvs, layer=layer, effective_date=day(effective)
                )
            ),
            *(
                catalogue_service_pb2.ImportCatalogueRequest(csv_chunk=content[i : i + chunk])
                for i in range(0, len(content), chunk)
            ),
        ]
        return catalogue.ImportCatalogue(iter(messages), timeout=30)

    return run


ImportPolicy = Callable[..., policy_service_pb2.ImportPolicyResponse]


@pytest.fixture
def import_policy(policy: policy_service_pb2_grpc.PolicyServiceStub) -> ImportPolicy:
    """Import a policy document (JSON text unless told TOML)."""

    def run(
        region: str,
        insutype: str,
        effective: str,
        document: str,
        *,
        end: str | None = None,
        toml: bool = False,
        rid: str | None = None,
    ):
        return policy.ImportPolicy(
            policy_service_pb2.ImportPolicyRequest(
                request_id=rid or request_id(),
                insuplc_admdvs=region,
                insutype=insutype,
                effective_date=day(effective),
                end_date=day(end) if end else None,
                format=policy_service_pb2.POLICY_FORMAT_TOML
                if toml
                else policy_service_pb2.POLICY_FORMAT_JSON,
                document=document.encode(),
            ),
            timeout=10,
        )

    return run
