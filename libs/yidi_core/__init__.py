"""The pure settlement core (DESIGN.md principle 1): money, codes, catalogue classification, policy application, accumulators. No gRPC, database, configuration or clock."""
