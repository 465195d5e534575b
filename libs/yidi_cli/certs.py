"""`yidi certs`: a development CA and certificates, and tokens for HIS platforms without client certificates.

`init` writes the layout of :mod:`yidi_runtime.certs` (keeping a CA already there, so a
folder can grow); ``--demo`` covers everyone `yidi demo` needs, as the demo's harness names
them (:mod:`yidi_harness.federation`, loaded with ``--demo`` only). It is for development
and tests: a production federation's certificates come from its own CA. `token` signs a
token with a node's key for one institution or operator of its region, valid at that node
only, and `revoke` adds a token's id to the node's revocation list: that is how a node's
operators hand out and withdraw tokens (:mod:`yidi_runtime.tokens`). The cryptography
machinery loads only when one of these commands runs.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="Development certificates (a CA, nodes, institutions, operators) and tokens.", no_args_is_help=True
)

OutOption = typer.Option(
    ..., "--out", file_okay=False, help="Folder of the PKI (created; an existing CA is kept)."
)
NodesOption = typer.Option(None, "--node", help="A node's region code (repeatable).")
InstitutionsOption = typer.Option(None, "--institution", help="An institution's national code (repeatable).")
OperatorsOption = typer.Option(
    None, "--operator", help="An operator as REGION/NAME, e.g. 330000/zhang.wei (repeatable)."
)
HostsOption = typer.Option(
    None,
    "--host",
    help="A host name or IP node certificates answer on, besides localhost and 127.0.0.1 (repeatable).",
)
KeyOption = typer.Option(
    ..., "--key", exists=True, dir_okay=False, help="The issuing node's private key (PEM)."
)
ListOption = typer.Option(
    ..., "--list", dir_okay=False, help="The node's revocation list ([tokens] revoked), created if missing."
)
_WARNING = (
    "[bold yellow]development only:[/] these keys are unencrypted files signed by a throwaway CA; "
    "a production federation takes its certificates from its own CA"
)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"yidi: {message}", err=True)
    return typer.Exit(2)


@app.command("init")
def init(
    out: Path = OutOption,
    demo: bool = typer.Option(
        False, "--demo", help="Everyone `yidi demo` needs: its nodes, the sample institutions, its operators."
    ),
    nodes: list[str] | None = NodesOption,
    institutions: list[str] | None = InstitutionsOption,
    operators: list[str] | None = OperatorsOption,
    hosts: list[str] | None = HostsOption,
) -> None:
    """Make (or extend) a development CA and a certificate for each node, institution and operator named."""
    from rich.console import Console
    from rich.table import Table

    from yidi_runtime.certs import DEFAULT_HOSTS, Pki, init_pki
    from yidi_runtime.identity import CallerRole, Principal, parse_subject

    wanted: list[Principal] = []
    if demo:
        from yidi_harness.federation import demo_principals

        wanted += demo_principals()
    for kind, values in (("node", nodes), ("institution", institutions), ("operator", operators)):
        for value in values or ():
            principal = parse_subject(f"{kind}/{value}")
            if principal is None:
                raise _fail(f"--{kind} {value!r} names no {kind} (see `yidi certs init --help`)")
            wanted.append(principal)
    if not wanted:
        raise _fail("name at least one holder: --demo, --node, --institution or --operator")
    unique = list(dict.fromkeys(wanted))
    had_ca = Pki(out).ca.is_file()
    pki = init_pki(
        out,
        nodes=[p.region for p in unique if p.role is CallerRole.NODE],
        institutions=[p.name for p in unique if p.role is CallerRole.INSTITUTION],
        operators=[(p.region, p.name) for p in unique if p.role is CallerRole.OPERATOR],
        hosts=list(dict.fromkeys([*DEFAULT_HOSTS, *(hosts or ())])),
    )
    table = Table(title=f"Development PKI in {out}", title_justify="left")
    for heading in ("holder", "certificate", "key"):
        table.add_column(heading, overflow="fold")
    table.add_row("CA (kept)" if had_ca else "CA (new)", "ca.pem", "ca.key")
    for principal in unique:
        files = pki.files(principal)
        table.add_row(principal.uri, str(files.cert.relative_to(out)), str(files.key.relative_to(out)))
    console = Console()
    console.print(table)
    console.print(_WARNING)


@app.command("token")
def token(
    key: Path = KeyOption,
    node: str = typer.Option(
        ..., "--node", help="The region of the node whose key this is; the token is valid there only."
    ),
    subject: str = typer.Option(
        ...,
        "--subject",
        help="Who the token names, within the node's region: institution/H… or operator/REGION/NAME.",
    ),
    ttl_hours: int = typer.Option(
        8,
        "--ttl-hours",
        help="Hours until the token expires (at most 24; the HIS refreshes it).",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the token with its id, subject and times as one JSON object."
    ),
) -> None:
    """Print a signed token for a HIS without a client certificate, valid at one node's token port.

    The HIS sends it as `authorization: Bearer …` over TLS and refreshes it with
    yidi.auth.v1.TokenService/RefreshToken. Its id (printed on stderr, or in the JSON) is
    what `yidi certs revoke` takes; revoking it also stops every token refreshed from it.
    """
    import json
    from datetime import timedelta

    from yidi_runtime.identity import parse_subject
    from yidi_runtime.tokens import issue_token

    if parse_subject(f"node/{node}") is None:
        raise _fail(f"--node {node!r} is not a region code")
    try:
        signed = issue_token(key, node, subject, timedelta(hours=ttl_hours))
    except ValueError as error:
        raise _fail(str(error)) from None
    if as_json:
        record = {
            "token": signed.token,
            "token_id": signed.jti,
            "node": signed.issuer,
            "subject": signed.principal.subject,
            "issued_at": signed.issued_at.isoformat(),
            "expires_at": signed.expires_at.isoformat(),
        }
        typer.echo(json.dumps(record, ensure_ascii=False))
        return
    typer.echo(signed.token)
    typer.echo(
        f"token id {signed.jti} for {signed.principal.subject} at node {signed.issuer}, "
        f"expires {signed.expires_at.isoformat()} (revoke: yidi certs revoke --list FILE {signed.jti})",
        err=True,
    )


@app.command("revoke")
def revoke(
    list_file: Path = ListOption,
    token_id: str = typer.Argument(..., help="The token id `yidi certs token` printed (32 hex digits)."),
    reason: str = typer.Option("", "--reason", help="Why, kept as a comment on the line."),
) -> None:
    """Add a token id to a node's revocation list: the node refuses that token and every token refreshed from it.

    Nodes notice the change within [tokens] revoked_check_s seconds, without a restart;
    give every replica of the node the same file.
    """
    from yidi_runtime.tokens import append_revocation

    token_id = token_id.strip().lower()
    try:
        added = append_revocation(list_file, token_id, reason=reason)
    except (ValueError, OSError) as error:
        raise _fail(str(error)) from None
    typer.echo(f"{'revoked' if added else 'already revoked'}: {token_id} in {list_file}", err=True)
