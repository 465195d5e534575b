"""The demo federation on mutual TLS: every node with its certificate, every caller with its own.

The samples load as the national operator, each HIS calls its node with its institution's
certificate, the insured regions' operators file and review, and the nodes forward to each
other with their node certificates; the seed stories play exactly as on insecure nodes. A
hospital may act only as itself and only at its own region's node.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from yidi_harness.federation import (
    DEMO_TOPOLOGY,
    Federation,
    init_demo_pki,
    institution,
    load_sample_data,
    start_federation,
)
from yidi_harness.stories import LANGFANG_RETIREE, STORIES, Encounter, Window, play_all

BEIJING_HOSPITAL = "H11010100001"
OTHER_BEIJING_HOSPITAL = "H11010200001"
TIANJIN_HOSPITAL = "H12011200001"


@pytest.fixture
def federation(tmp_path: Path, database_factory: Callable[[], str | None]) -> Iterator[Federation]:
    pki = init_demo_pki(tmp_path / "certs")
    with start_federation(DEMO_TOPOLOGY, tmp_path, database_factory, pki=pki) as started:
        load_sample_data(started)
        yield started


def test_the_seed_stories_play_over_mutual_tls(federation: Federation) -> None:
    assert federation.pki is not None and all(
        node.settings.tls is not None for node in federation.nodes.values()
    )
    results = play_all(federation, datetime.now(UTC))
    for result in results:
        failed = [description for description, held in result.expectations if not held]
        assert result.ok, f"story {result.number}: {result.failure or failed}\n" + "\n".join(result.steps)
    assert [result.settlement is not None for result in results] == [story.settles for story in STORIES]


def verify_code(federation: Federation, node: str, certificate_of: str, envelope_of: str) -> grpc.StatusCode:
    """VerifyPerson at ``node`` with one hospital's certificate and another's (or the same) envelope."""
    now = datetime.now(UTC)
    visit = Encounter(LANGFANG_RETIREE, envelope_of, "14", now.date(), now, ("E11.900",), ())
    window = Window(federation.channel(node, institution(certificate_of)), envelope_of)
    try:
        window.verify(visit)
    except grpc.RpcError as error:
        return error.code()  # type: ignore[attr-defined, no-any-return]
    return grpc.StatusCode.OK


def test_a_hospital_acts_only_as_itself_and_only_at_its_own_node(federation: Federation) -> None:
    answered = verify_code(federation, "110000", BEIJING_HOSPITAL, BEIJING_HOSPITAL)
    assert answered not in (
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAVAILABLE,
    )  # the handler judged it
    assert (
        verify_code(federation, "110000", TIANJIN_HOSPITAL, TIANJIN_HOSPITAL)
        == grpc.StatusCode.PERMISSION_DENIED
    )
    assert verify_code(federation, "110000", OTHER_BEIJING_HOSPITAL, BEIJING_HOSPITAL) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
