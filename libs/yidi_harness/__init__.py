"""The test and demo harness: federations of nodes started for a run, the seed stories, fault injection.

``yidi demo``, the tests and the benchmarks share it: an in-process federation of nodes on
loopback loaded with the samples (:mod:`~yidi_harness.federation`), a federation of node
processes with delaying and answer-losing links (:mod:`~yidi_harness.processes`), the seed
stories played through the HIS stubs (:mod:`~yidi_harness.stories`), holes planted by hand in
a node's own database (:mod:`~yidi_harness.faults`), the demo's month-end
(:mod:`~yidi_harness.month_end`), the demo itself (:mod:`~yidi_harness.demo`) and a
throwaway PostgreSQL server (:mod:`~yidi_harness.postgres_server`).

None of it is part of a node: production nodes never import it. The product imports it in
two places only, lazily, both for the demo: the ``yidi demo`` command and ``yidi certs init
--demo`` (which names everyone the demo federation needs a certificate for).
"""
