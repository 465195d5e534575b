"""Collaboration tickets (协同处理) between a treatment place and an insured place, kept at both parties' nodes."""
