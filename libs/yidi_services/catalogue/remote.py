"""The catalogue as the node hosting it answers: LookupItems, as core values.

A peer's answer is read by :mod:`yidi_codec`, the inverse of what this service's own
handlers answer, so a remote source yields exactly what a local one would. (Policies are
found by :mod:`~yidi_services.catalogue.policy_finder`.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from yidi.catalogue.v1 import catalogue_service_pb2, catalogue_service_pb2_grpc
from yidi_codec.catalogue import entry_from_proto
from yidi_runtime.peers import PeerClient
from yidi_runtime.wire import date_message
from yidi_services.catalogue.estimate import VERSION_SEPARATOR, Catalogued


class PeerSources:
    """The estimate's source at another node: the treatment province's catalogue."""

    def catalogue(self, peer: PeerClient, treatment: str, day: date, codes: Sequence[str]) -> Catalogued:
        """LookupItems at ``peer``: the entries in force for ``codes`` and the versions that hold them."""
        if not codes:
            return Catalogued({}, "")  # an empty bill: the core refuses it, naming ``items``
        stub = peer.stub(catalogue_service_pb2_grpc.CatalogueServiceStub)
        answer = peer.call(
            stub.LookupItems,
            catalogue_service_pb2.LookupItemsRequest(admdvs=treatment, codes=codes, date=date_message(day)),
        )
        versions = (answer.overlay_version_id, answer.base_version_id)
        return Catalogued(
            {item.code: entry_from_proto(item) for item in answer.items},
            VERSION_SEPARATOR.join(version for version in versions if version),
        )
