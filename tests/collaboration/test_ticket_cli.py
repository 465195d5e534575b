"""`yidi ticket` against a node serving both parties (Hebei 130000), as an insecure development caller."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from collaboration_support import Clock, start_on
from typer.testing import CliRunner, Result

from yidi_cli.main import app
from yidi_runtime.server import Node
from yidi_testing import settings_for


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    settings = settings_for(
        tmp_path_factory.mktemp("hebei"),
        auto_migrate=True,
        role="province",
        region="130000",
        services="collaboration",
    )
    started = start_on(Clock())(settings)
    yield started
    started.stop(0)


def yidi(node: Node, *args: str) -> Result:
    """The command run in process (the other CLI tests run the installed script)."""
    return CliRunner().invoke(app, ["ticket", *args, "--address", node.address, "--insecure"])


def test_a_ticket_is_opened_listed_answered_and_shown_and_a_refusal_names_its_reason(node: Node) -> None:
    opened = yidi(
        node,
        "open",
        "--kind=settlement",
        "--subject=130100000000000000000000000001",
        "--category=missing-record",
        "--treatment=130100",
        "--insured=131000",
        "--opener=insured",
        "--text=No settlement record at the insured place.",
    )
    assert opened.exit_code == 0, opened.stderr
    assert "open, awaiting treatment, due 2026-03-12" in opened.stdout
    [summary] = [line for line in opened.stdout.splitlines() if line.startswith("ticket ")]
    ticket_id = summary.split()[1].rstrip(":")

    listed = yidi(node, "list")
    assert listed.exit_code == 0, listed.stderr
    assert "1 tickets, 0 overdue" in listed.stdout and ticket_id in listed.stdout

    refused = yidi(node, "close", ticket_id)
    assert refused.exit_code == 1
    assert "refused: TICKET_STATE" in refused.stderr

    answered = yidi(node, "answer", ticket_id, "--text=Sent again today.")
    assert answered.exit_code == 0, answered.stderr
    shown = yidi(node, "show", ticket_id)
    assert "answered, awaiting insured, due 2026-03-19" in shown.stdout
    assert "2. answer by developer/developer (treatment): Sent again today." in shown.stdout
