"""The `yidi` command line. Commands import their machinery lazily so `yidi calc` starts fast."""

from __future__ import annotations

from pathlib import Path

import typer

from yidi_cli.audit import audit
from yidi_cli.catalogue import catalogue_app, policy_app
from yidi_cli.certs import app as certs_app
from yidi_cli.clearing import app as clearing_app
from yidi_cli.clearing import reconcile
from yidi_cli.filing import app as filing_app
from yidi_cli.registry import app as registry_app
from yidi_cli.report import report
from yidi_cli.ticket import app as ticket_app
from yidi_runtime.config import ConfigError, NodeSettings, check_transport, load_settings

app = typer.Typer(
    name="yidi",
    help="yidi: cross-region direct settlement of medical insurance (跨省异地就医直接结算).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """yidi: cross-region direct settlement of medical insurance (跨省异地就医直接结算)."""


@app.command()
def calc(
    case: str = typer.Argument(..., help="Path to a case JSON file, or - for standard input."),
    explain: bool = typer.Option(False, "--explain", help="Include the explanation of every step."),
) -> None:
    """Settle one case with the core and print the result JSON (exit 2 on a refused case)."""
    from yidi_cli.calc import run_calc

    raise typer.Exit(run_calc(case, explain=explain))


def _settings(config: Path | None, **overrides: object) -> NodeSettings:
    try:
        return load_settings(config, overrides=overrides)
    except ConfigError as error:
        typer.echo(f"yidi: {error}", err=True)
        raise typer.Exit(2) from None


ConfigOption = typer.Option(None, "--config", "-c", help="Node configuration TOML file.")
DataDirOption = typer.Option(None, "--data-dir", help="Directory for the embedded databases.")


@app.command()
def serve(
    config: Path | None = ConfigOption,
    data_dir: Path | None = DataDirOption,
    grpc_port: int | None = typer.Option(None, "--grpc-port", help="gRPC port (0 picks a free one)."),
    metrics_port: int | None = typer.Option(None, "--metrics-port", help="Prometheus /metrics port."),
    services: str | None = typer.Option(None, "--services", help="Comma-separated services to run."),
    insecure: bool = typer.Option(
        False,
        "--insecure",
        help="Serve plaintext without authentication (local development only; [tls] insecure = true).",
    ),
) -> None:
    """Run one node: mutual TLS with its [tls] files, or plaintext with --insecure (local development only).

    With no configuration: a standalone province node on the embedded database.
    """
    from yidi_cli.serve import run_node

    settings = _settings(
        config,
        data_dir=data_dir,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        services=services,
        insecure=True if insecure else None,
    )
    try:
        check_transport(settings)
    except ConfigError as error:
        typer.echo(f"yidi: {error}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(run_node(settings))


DEMO_BASE_PORT = 50100
"""`yidi demo --keep-running`: the national node's port; the others follow in topology order."""
DemoDataDirOption = typer.Option(
    None, "--data-dir", help="New or empty directory for the nodes' databases (default: a temporary one)."
)

DemoCertsOption = typer.Option(
    None,
    "--certs",
    file_okay=False,
    help="Certificates from `yidi certs init --demo` (default: new ones in the data folder's certs/).",
)


@app.command()
def demo(
    data_dir: Path | None = DemoDataDirOption,
    keep_running: bool = typer.Option(
        False, "--keep-running", help="Leave the federation up after the stories, until Ctrl-C."
    ),
    base_port: int = typer.Option(
        DEMO_BASE_PORT,
        "--base-port",
        help="With --keep-running: the national node's port; the others follow.",
    ),
    certs: Path | None = DemoCertsOption,
    insecure: bool = typer.Option(
        False, "--insecure", help="Run the nodes plaintext, without identities (local development only)."
    ),
) -> None:
    """Start a federation of nodes in process, load the sample data and play the seed stories through the HIS API.

    The nodes talk mutual TLS: every HIS, operator and node presents its own certificate.
    """
    # The demo is harness (federations, seed stories, fault injection), not product: it loads
    # only when this command runs (`yidi certs init --demo` is the product's one other door to it).
    from yidi_harness.demo import run_demo

    raise typer.Exit(
        run_demo(data_dir, keep_running=keep_running, base_port=base_port, certs=certs, insecure=insecure)
    )


app.add_typer(catalogue_app, name="catalogue")
app.add_typer(policy_app, name="policy")
app.add_typer(registry_app, name="registry")
app.add_typer(filing_app, name="filing")
app.add_typer(clearing_app, name="clearing")
app.add_typer(ticket_app, name="ticket")
app.command("reconcile")(reconcile)
app.command("audit")(audit)
app.command("report")(report)
app.add_typer(certs_app, name="certs")

db_app = typer.Typer(
    help="Database schema: upgrade and inspect each service's migrations.", no_args_is_help=True
)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(
    config: Path | None = ConfigOption,
    data_dir: Path | None = DataDirOption,
    services: str | None = typer.Option(None, "--services", help="Only these services."),
) -> None:
    """Apply every pending migration of the node's services (production deploy step)."""
    from yidi_cli.database import upgrade_all

    upgrade_all(_settings(config, data_dir=data_dir, services=services))


@db_app.command("current")
def db_current(
    config: Path | None = ConfigOption,
    data_dir: Path | None = DataDirOption,
) -> None:
    """Show each service's schema revision next to the code's head revision."""
    from yidi_cli.database import show_revisions

    show_revisions(_settings(config, data_dir=data_dir))


def main() -> None:
    """Console-script entry point."""
    app()
