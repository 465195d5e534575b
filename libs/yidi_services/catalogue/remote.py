"""Catalogue and policy as the nodes hosting them answer: LookupItems and GetPolicy, as core values.

A peer's answer is converted by the inverses of this service's own messages and the
core's own policy parser, so a remote source yields exactly what a local one would. A
policy version never changes once imported, so its parsed form is kept (bounded, least
recently used first out) and a hot estimate parses it once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import date

from yidi.catalogue.v1 import (
    catalogue_service_pb2,
    catalogue_service_pb2_grpc,
    policy_pb2,
    policy_service_pb2,
    policy_service_pb2_grpc,
)
from yidi_core.case_format import parse_policy
from yidi_core.policy import Policy
from yidi_runtime.peers import PeerClient
from yidi_runtime.wire import date_message
from yidi_services.catalogue.estimate import VERSION_SEPARATOR, Catalogued, PolicyInForce
from yidi_services.catalogue.messages import catalogue_entry, policy_document

DEFAULT_MAX_POLICIES = 256
PolicyKey = tuple[str, int, int]


class ParsedPolicies:
    """Thread-safe, bounded: parsed policies by version id (and import time, should two nodes share an id)."""

    def __init__(self, max_entries: int = DEFAULT_MAX_POLICIES) -> None:
        self._entries: OrderedDict[PolicyKey, Policy] = OrderedDict()
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def parsed(self, message: policy_pb2.Policy) -> Policy:
        """The core's policy for ``message``, parsed on first sight of its version."""
        key = (message.version_id, message.import_time.seconds, message.import_time.nanos)
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                return found
        policy = parse_policy(policy_document(message))
        with self._lock:
            self._entries[key] = policy
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return policy


class PeerSources:
    """Estimate sources at other nodes: the treatment province's catalogue, the insured place's policy."""

    def __init__(self, policies: ParsedPolicies | None = None) -> None:
        self._policies = policies or ParsedPolicies()

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
            {item.code: catalogue_entry(item) for item in answer.items},
            VERSION_SEPARATOR.join(version for version in versions if version),
        )

    def policy(self, peer: PeerClient, insured: str, insutype: str, day: date) -> PolicyInForce:
        """GetPolicy at ``peer``: the version in force on ``day``, parsed once per version."""
        stub = peer.stub(policy_service_pb2_grpc.PolicyServiceStub)
        answer = peer.call(
            stub.GetPolicy,
            policy_service_pb2.GetPolicyRequest(
                insuplc_admdvs=insured, insutype=insutype, date=date_message(day)
            ),
        )
        return PolicyInForce(self._policies.parsed(answer.policy), answer.policy.version_id)
