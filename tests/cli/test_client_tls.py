"""The transport options of every `yidi` command that dials a node: --cert/--key/--ca, --token, --insecure.

A command says how it reaches a node or does not run; with a certificate the node knows the
caller by it (an operator may import, an institution may not); --insecure reaches only a node
run insecure.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from yidi_cli.main import app
from yidi_runtime.certs import Pki, init_pki
from yidi_runtime.config import TlsFiles
from yidi_runtime.server import Node
from yidi_services.node import start_node
from yidi_testing import settings_for

runner = CliRunner()
INSTITUTIONS = Path(__file__).resolve().parents[2] / "examples" / "data" / "institutions.csv"
HOSPITAL = "H11010100001"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return init_pki(
        tmp_path / "pki", nodes=["110000"], institutions=[HOSPITAL], operators=[("110000", "ops")]
    )


@pytest.fixture
def secure_node(tmp_path: Path, pki: Pki) -> Iterator[Node]:
    started = start_node(settings_for(tmp_path / "node", tls=pki.node("110000"), services="registry"))
    yield started
    started.stop(0)


def coverage(address: str, *transport: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(
        app, ["registry", "coverage", "--region", "110000", "--address", address, *transport], env=env
    )
    return result.exit_code, result.output


def as_(files: TlsFiles) -> list[str]:
    return ["--cert", str(files.cert), "--key", str(files.key), "--ca", str(files.ca)]


@pytest.mark.parametrize(
    ("transport", "complaint"),
    [
        ([], "say how to reach the node"),
        (["--insecure", "--token", "t"], "--insecure cannot be combined"),
        (["--token", "t"], "--ca is required"),
    ],
)
def test_a_command_without_a_usable_transport_stops_before_dialing(
    transport: list[str], complaint: str
) -> None:
    code, output = coverage("127.0.0.1:1", *transport)
    assert code == 2
    assert complaint in output


def test_cert_and_key_go_together(pki: Pki) -> None:
    files = pki.operator("110000", "ops")
    code, output = coverage("127.0.0.1:1", "--cert", str(files.cert), "--ca", str(files.ca))
    assert code == 2 and "--cert and --key go together" in output


def test_a_certificate_names_the_caller_to_a_mutual_tls_node(secure_node: Node, pki: Pki) -> None:
    code, output = coverage(secure_node.address, *as_(pki.operator("110000", "ops")))
    assert code == 0, output
    imported = runner.invoke(
        app,
        [
            "registry",
            "import",
            str(INSTITUTIONS),
            "--address",
            secure_node.address,
            *as_(pki.institution(HOSPITAL)),
        ],
    )
    assert imported.exit_code == 1, imported.output
    assert "refused: PERMISSION_DENIED_ROLE" in imported.stderr


def test_the_options_come_from_the_environment_too(secure_node: Node, pki: Pki) -> None:
    files = pki.operator("110000", "ops")
    env = {
        "YIDI_CLIENT_CERT": str(files.cert),
        "YIDI_CLIENT_KEY": str(files.key),
        "YIDI_CLIENT_CA": str(files.ca),
    }
    code, output = coverage(secure_node.address, env=env)
    assert code == 0, output


def test_insecure_reaches_only_an_insecure_node(secure_node: Node, node: Node) -> None:
    code, output = coverage(secure_node.address, "--insecure")
    assert code == 3 and "node unreachable" in output
    code, output = coverage(node.address, env={"YIDI_CLIENT_INSECURE": "1"})
    assert code == 0, output
