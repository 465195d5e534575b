"""The policy a person is settled with: the insured region's own, else its city's, else its province's.

GetPolicy and Estimate both ask here. The regions this node hosts are read from its tables
(nearest first, one short query each); the first region it does not host is asked at the
next node toward it, which walks on from there itself. ``policy.insuplc_admdvs`` of the
answer says whose policy it is.

Nothing is kept between calls except each version's message, built once (a version never
changes once imported): a county that imports its own policy is settled with it from the
next call on, and a node's fallback to a region hosted elsewhere costs one call to that node.
"""

from __future__ import annotations

from datetime import date

from yidi.catalogue.v1 import policy_pb2, policy_service_pb2, policy_service_pb2_grpc
from yidi_codec.policies import ParsedPolicies
from yidi_core.errors import DomainError
from yidi_runtime.db import Database
from yidi_runtime.wire import date_message
from yidi_services.catalogue import policies
from yidi_services.catalogue.estimate import INSURED_FIELD, PolicyInForce
from yidi_services.catalogue.hosts import Hosts
from yidi_services.catalogue.messages import PolicyMessages


class PolicyFinder:
    """Finds the most specific policy in force up the region tree, here or at the nodes hosting it."""

    def __init__(self, database: Database, hosts: Hosts) -> None:
        self._database = database
        self._hosts = hosts
        self._messages = PolicyMessages()
        self._parsed = ParsedPolicies()

    def message(
        self,
        insured: str,
        insutype: str,
        day: date,
        *,
        field: str = INSURED_FIELD,
        deadline_s: float | None = None,
    ) -> policy_pb2.Policy:
        """The policy in force on ``day`` for a person insured in ``insured`` (``NO_POLICY_VERSION`` when
        neither the region, its city nor its province has one); the message is shared, never change it."""
        here, elsewhere = self._hosts.policy_places(insured, field)
        if here:
            with self._database.unit_of_work() as uow:
                pk = policies.most_specific_in_force(uow.session, here, insutype, day)
                if pk is not None:
                    session = uow.session
                    return self._messages.of(pk, lambda: policies.stored_version(session, pk))
        if elsewhere is None:
            raise policies.no_policy(insured, insutype, day)
        region, peer = elsewhere
        stub = peer.stub(policy_service_pb2_grpc.PolicyServiceStub)
        request = policy_service_pb2.GetPolicyRequest(
            insuplc_admdvs=region, insutype=insutype, date=date_message(day)
        )
        try:
            answer: policy_service_pb2.GetPolicyResponse = peer.call(
                stub.GetPolicy, request, deadline_s=deadline_s
            )
        except DomainError as refusal:
            if refusal.reason_code == "NO_POLICY_VERSION" and region != insured:
                raise policies.no_policy(insured, insutype, day) from None
            raise
        return answer.policy

    def in_force(self, insured: str, insutype: str, day: date) -> PolicyInForce:
        """:meth:`message` as the core's policy, parsed once per version (what Estimate applies)."""
        message = self.message(insured, insutype, day)
        return PolicyInForce(self._parsed.parsed(message), message.version_id)
