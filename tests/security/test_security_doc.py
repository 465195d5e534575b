"""docs/security.md's access table is the rules, generated: this keeps it true when a rule changes."""

from __future__ import annotations

from pathlib import Path

from yidi_runtime.audit_service import GROUP as AUDIT
from yidi_runtime.authz import Access
from yidi_runtime.identity import CallerRole
from yidi_runtime.token_service import ACCESS as TOKEN_ACCESS
from yidi_services.node import GROUPS

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
START = "<!-- access table: generated from the rules; tests/security/test_security_doc.py keeps it true -->"
END = "<!-- end of access table -->"


def _cell(rule: Access, role: CallerRole, fields: tuple[str, ...]) -> str:
    if role not in rule.roles:
        return "—"
    return "yes" + (" (" + ", ".join(f"`{field}`" for field in fields) + ")" if fields else "")


def table() -> list[str]:
    """One row per method: service, method, and what an institution, an operator and a node may."""
    rules = {method: rule for group in [*GROUPS.values(), AUDIT] for method, rule in group.access.items()}
    rows = []
    for method, rule in sorted(
        (rules | TOKEN_ACCESS).items(),
        key=lambda item: (item[0].strip("/").rsplit("/", 1)[0].split(".")[-1], item[0]),
    ):
        service, name = method.strip("/").rsplit("/", 1)
        node = _cell(rule, CallerRole.NODE, rule.origin)
        if CallerRole.NODE in rule.roles and rule.from_above:
            node += ", ancestors only"
        institution = _cell(rule, CallerRole.INSTITUTION, rule.own)
        operator = _cell(rule, CallerRole.OPERATOR, ())
        if CallerRole.OPERATOR in rule.roles and rule.operators_below:
            operator += ", also from below (own region's records only)"
        rows.append(f"| {service.split('.')[-1]} | {name} | {institution} | {operator} | {node} |")
    return rows


def test_the_access_table_in_the_security_doc_is_the_rules() -> None:
    text = DOC.read_text(encoding="utf-8")
    body = text.split(START, 1)[1].split(END, 1)[0].strip().splitlines()
    assert body[:2] == ["| service | method | institution | operator | node |", "|---|---|---|---|---|"]
    assert body[2:] == table()
