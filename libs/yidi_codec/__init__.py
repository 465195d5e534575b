"""Proto ↔ core values for the wire types several services share, in one place.

Policies, catalogue items, visits, fee lines, persons and settlement results cross node and
service boundaries as the protos of ``yidi.type.v1`` and ``yidi.catalogue.v1``, while the
settlement core works on plain values. Each such conversion is written here once, directly
(never through the ``yidi calc`` case dictionary, which stays the format of JSON files), so
two services cannot read the same message differently, and the settlement hot path pays for
each conversion once. Refusals name the proto's field paths (:mod:`yidi_codec.fields`).
The treatment side's records are stored as :mod:`yidi_codec.documents` converts them.

Depends on the generated protos (``yidi``) and the core (``yidi_core``) only.
"""
