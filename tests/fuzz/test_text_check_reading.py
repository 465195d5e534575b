"""The text check reads every request's strings once, by a plan per message type, and lets the
field-by-field walk (``refusal``) name the bad ones: it must refuse exactly what the walk refuses.

Any request of any RPC (``proto_strategies``: wild values, control characters slipped in,
lists of thousands, fields left out) passes :func:`ensure_sound` exactly when the walk
finds nothing, and is otherwise refused with the walk's own error, every path in it. Runs
are reproducible (a fixed seed, no example database).
"""

from __future__ import annotations

import pytest
from fuzz_support import proto_methods
from google.protobuf.descriptor import Descriptor
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from proto_strategies import request_strategy

from yidi_core.errors import DomainError
from yidi_runtime.text_checks import ensure_sound, refusal

REQUESTS = sorted({method.input_type for method in proto_methods()}, key=lambda d: d.full_name)


@pytest.mark.parametrize("descriptor", REQUESTS, ids=lambda descriptor: descriptor.full_name)
def test_a_request_is_refused_exactly_when_the_walk_finds_a_bad_string(descriptor: Descriptor) -> None:
    @seed(20261207)
    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.data())
    def check(data: st.DataObject) -> None:
        request = data.draw(request_strategy(descriptor))
        walked = refusal(request)
        try:
            ensure_sound(request)
        except DomainError as error:
            assert error == walked
        else:
            assert walked is None

    check()
