"""Clearing service (清算): advances, monthly clearing, ledger and three-way reconciliation at the national node."""
