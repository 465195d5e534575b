"""Filing service (异地就医备案): insured persons and their out-of-area filings, at the insured-place node."""
