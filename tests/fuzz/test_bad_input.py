"""Bad input for every RPC: the node never fails inside, never half-writes, always names a reason.

Every RPC the stubs declare gets hypothesis-generated requests (``proto_strategies``):
wild ones (wrong codes, huge lists, extreme amounts, missing fields, impossible dates and
times, unknown enum values) and plausible ones that pass the first checks, on an empty
province node, on the Hebei node loaded with the samples and on an empty national node
(clearing answers only there); client-streamed imports get fuzzed streams. Each answer is
checked by ``fuzz_support.check_call``. Runs are reproducible (a fixed seed per node and
method, no example database) and bounded: 25 examples per method on SQLite; PostgreSQL
fuzzes the loaded node only, with 5. Bytes that are not the request at all (cut short,
broken tags, a string that is not UTF-8) are refused INVALID_ARGUMENT by every RPC.
"""

from __future__ import annotations

import grpc
import pytest
from fuzz_support import Target, check_refusal, full_name, fuzz_method, proto_methods, served_methods
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor

from yidi_testing import error_details

METHODS = proto_methods()
EXAMPLES = {"sqlite": 25, "postgresql": 5}


def test_every_served_rpc_is_fuzzed(target: Target) -> None:
    served = {full_name(method) for method in served_methods(target.node)}
    assert len(served) > 70
    assert served <= {full_name(method) for method in METHODS}


@pytest.mark.parametrize("method", METHODS, ids=full_name)
def test_rpc_refuses_bad_input_with_a_reason_and_no_partial_write(
    target: Target, method: MethodDescriptor
) -> None:
    if method.containing_service.full_name not in target.node.service_names:
        pytest.skip(f"{method.containing_service.full_name} is not served by a node")
    answers = fuzz_method(target, method, EXAMPLES[target.label.split("-")[1]])
    assert answers, "no request was sent"


BROKEN = [b"\xff", b"\x0f", b"\x08", b"\x0a\x05ab"]
"""Bytes no message decodes from: a tag cut short, wire type 7, a varint missing, a string cut short."""


def _not_utf8(method: MethodDescriptor) -> list[bytes]:
    """The request's first string field holding bytes that are not UTF-8 (none without a string field)."""
    strings = [field for field in method.input_type.fields if field.type == FieldDescriptor.TYPE_STRING]
    if not strings:
        return []
    tag = strings[0].number << 3 | 2
    varint = bytearray()
    while tag > 0x7F:
        varint.append(tag & 0x7F | 0x80)
        tag >>= 7
    return [bytes([*varint, tag, 2, 0xFF, 0xFE])]


@pytest.mark.parametrize("method", METHODS, ids=full_name)
def test_rpc_refuses_bytes_that_are_not_its_request(target: Target, method: MethodDescriptor) -> None:
    if method.containing_service.full_name not in target.node.service_names:
        pytest.skip(f"{method.containing_service.full_name} is not served by a node")
    for payload in [*BROKEN, *_not_utf8(method)]:
        with pytest.raises(grpc.RpcError) as refused:
            target.call_raw(method, payload)
        assert check_refusal(method, refused.value) == "INVALID_ARGUMENT", payload
        fields = [v.field for v in error_details(refused.value)["BadRequest"].field_violations]
        assert fields == [""], (payload, fields)
