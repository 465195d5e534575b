"""A federation in one process: a region tree of nodes on loopback, wired and loaded with data.

`yidi demo`, the federation tests and the benchmarks all need the same thing: a national
node, province nodes and city nodes, each the ordinary node program (``start_node``) with
its own data folder (or its own PostgreSQL database), its parent and children configured
with the addresses they will listen on, and — given a development PKI (``yidi certs init
--demo``) — its own certificate, so the nodes talk mutual TLS and every client names who it
is. Ports are chosen before any node starts, because a parent must know its children's
addresses: free ports by default, or consecutive ports from a base port when a human or a
HIS needs to find them again.

:func:`load_sample_data` then loads ``examples/data`` through the generated stubs into the
node that owns each piece (DESIGN.md "Where the data lives"), exactly as each node's
operators would with their own tools: as the national operator ``operator/000000/demo``.
"""

from __future__ import annotations

import csv
import io
import random
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import grpc
from google.type.date_pb2 import Date

from yidi.catalogue.v1 import (
    catalogue_pb2,
    catalogue_service_pb2,
    catalogue_service_pb2_grpc,
    policy_service_pb2,
    policy_service_pb2_grpc,
)
from yidi.filing.v1 import filing_service_pb2, filing_service_pb2_grpc
from yidi.registry.v1 import institution_registry_service_pb2 as registry_api
from yidi.registry.v1 import institution_registry_service_pb2_grpc as registry_grpc
from yidi_cli.client_tls import ClientTls
from yidi_cli.filing_client import read_persons, read_rules
from yidi_cli.node_client import open_channel
from yidi_core.codes import NATIONAL_REGION
from yidi_runtime.auth import PRINCIPAL_HEADER
from yidi_runtime.certs import DEFAULT_HOSTS, Pki, init_pki
from yidi_runtime.config import SERVICE_NAMES, NodeSettings, Role, TlsFiles, load_settings, region_contains
from yidi_runtime.identity import CallerRole, Principal
from yidi_runtime.peers import message_id
from yidi_runtime.regions import region_prefix
from yidi_runtime.server import Node
from yidi_services.node import start_node

SAMPLE_DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
SAMPLE_EFFECTIVE_DATE = Date(year=2022, month=1, day=1)
"""Catalogues and policies of the samples are in force from this day, before the worked example's 2022-07-01."""

LOOPBACK = "127.0.0.1"
_CHUNK_BYTES = 64 * 1024
_IMPORT_DEADLINE_S = 120.0
_PARENT_WAIT_S = 30.0
"""How long loading waits for a node's parent to answer (gRPC's reconnect backoff is at most 5 s)."""
_POLICY_FORMATS = {
    ".json": policy_service_pb2.POLICY_FORMAT_JSON,
    ".toml": policy_service_pb2.POLICY_FORMAT_TOML,
}

DatabaseUrlFactory = Callable[[], str | None]
"""Called once per node, in topology order: a fresh database URL, or None for SQLite files."""

Identity = Principal | TlsFiles
"""Who a client of the federation is: a principal (its files from the federation's PKI), or files."""
NATIONAL_OPERATOR = Principal(CallerRole.OPERATOR, "demo", NATIONAL_REGION)
"""``operator/000000/demo``: loads the samples and closes the month; a national operator acts anywhere."""
NATIONAL_APP = Principal(CallerRole.OPERATOR, "app", NATIONAL_REGION)
NATIONAL_MINI_PROGRAM = Principal(CallerRole.OPERATOR, "mini-program", NATIONAL_REGION)
"""The national channels for filing (国家医保服务平台 app, mini-program), hosted at the national node."""


@dataclass(frozen=True)
class NodeSpec:
    """One node of a topology: its region, role, a short name, its parent's region and its services."""

    region: str
    role: Role
    name: str
    parent: str | None = None
    services: tuple[str, ...] = SERVICE_NAMES


@dataclass(frozen=True)
class Topology:
    """A region tree: every parent listed before its children."""

    nodes: tuple[NodeSpec, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for spec in self.nodes:
            if spec.region in seen:
                raise ValueError(f"region {spec.region} appears twice in the topology")
            if spec.parent is not None and spec.parent not in seen:
                raise ValueError(f"node {spec.region}: parent {spec.parent} must be listed before it")
            seen.add(spec.region)

    def __getitem__(self, region: str) -> NodeSpec:
        for spec in self.nodes:
            if spec.region == region:
                return spec
        raise KeyError(region)

    def children_of(self, region: str) -> tuple[NodeSpec, ...]:
        """The nodes whose parent is ``region``."""
        return tuple(spec for spec in self.nodes if spec.parent == region)

    def host_of(self, region: str, service: str | None = None) -> NodeSpec | None:
        """The node hosting ``region``: the deepest node whose region contains it (None: no node does).

        The national node owns no region itself (it routes every region down to its
        province), so it never hosts one. With ``service``, only nodes running it count.
        """
        candidates = [
            spec
            for spec in self.nodes
            if spec.region != NATIONAL_REGION
            and region_contains(spec.region, region)
            and (service is None or service in spec.services)
        ]
        return max(candidates, key=lambda spec: len(region_prefix(spec.region)), default=None)


DEMO_TOPOLOGY = Topology(
    (
        NodeSpec(NATIONAL_REGION, Role.NATIONAL, "national"),
        NodeSpec("110000", Role.PROVINCE, "beijing", NATIONAL_REGION),
        NodeSpec("120000", Role.PROVINCE, "tianjin", NATIONAL_REGION),
        NodeSpec("130000", Role.PROVINCE, "hebei", NATIONAL_REGION),
        NodeSpec("140000", Role.PROVINCE, "shanxi", NATIONAL_REGION),
        NodeSpec("330000", Role.PROVINCE, "zhejiang", NATIONAL_REGION),
        NodeSpec("440000", Role.PROVINCE, "guangdong", NATIONAL_REGION),
        NodeSpec("630000", Role.PROVINCE, "qinghai", NATIONAL_REGION),
        NodeSpec("131000", Role.CITY, "langfang", "130000"),
        NodeSpec("330400", Role.CITY, "jiaxing", "330000"),
    )
)
"""The seed stories' tree: the national node, seven provinces, and the Langfang and Jiaxing city nodes."""


_PLANNED_PORTS = range(20_000, 32_000)
"""Where planned ports are drawn from: below Linux's ephemeral range (32768–60999), which the
kernel hands to every outgoing connection — a port picked there can be taken by a client
socket between planning and binding; one picked here is only ever bound on purpose."""
_random = random.Random()


def share_planned_ports(share: int, shares: int) -> None:
    """Draw planned ports only from the ``share``-th of ``shares`` equal slices of the range, so that
    processes planning at the same moment (parallel test workers) never pick the same port."""
    global _PLANNED_PORTS
    size = len(_PLANNED_PORTS) // shares
    _PLANNED_PORTS = range(_PLANNED_PORTS.start + share * size, _PLANNED_PORTS.start + (share + 1) * size)


def free_port(host: str = LOOPBACK, avoid: Collection[int] = ()) -> int:
    """A port nothing listens on right now (the node binds it moments later), not in ``avoid``."""
    for _ in range(200):
        port = _random.choice(_PLANNED_PORTS)
        if port not in avoid and _bindable(port, host):
            return port
    with socket.socket() as probe:  # an unusual machine: let the kernel choose
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _bindable(port: int, host: str) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_base_port(count: int, host: str = LOOPBACK, attempts: int = 50) -> int:
    """A base port with ``count`` consecutive ports free right now (for fixed-port federations in tests)."""
    for _ in range(attempts):
        base = free_port(host)
        if base + count <= 65536 and all(_bindable(port, host) for port in range(base, base + count)):
            return base
    raise OSError(f"found no {count} consecutive free ports on {host}")


def plan_ports(topology: Topology, base_port: int | None = None, host: str = LOOPBACK) -> dict[str, int]:
    """Each node's gRPC port: ``base_port`` + its index in the topology, else a free port.

    Fixed ports are checked first, so a port in use is named instead of failing half-way.
    """
    if base_port is None:
        planned: dict[str, int] = {}
        for spec in topology.nodes:
            planned[spec.region] = free_port(host, avoid=set(planned.values()))
        return planned
    ports = {spec.region: base_port + index for index, spec in enumerate(topology.nodes)}
    taken = [port for port in ports.values() if not _bindable(port, host)]
    if taken:
        raise OSError(f"port {taken[0]} on {host} is in use: choose another base port")
    return ports


def node_settings(
    spec: NodeSpec,
    topology: Topology,
    addresses: Mapping[str, str],
    data_dir: Path,
    database_url: str | None,
    overrides: Mapping[str, Any],
    tls: TlsFiles | None = None,
) -> NodeSettings:
    """One node's settings, through the same validation as a TOML file (the tree is checked too).

    With ``tls`` the node serves mutual TLS with those files; without, it runs insecure, as
    asked for explicitly. The process environment is deliberately ignored: a stray
    ``YIDI_*`` variable must not rewire one node of an in-process tree.
    """
    environ = {"YIDI_DATABASE_URL": database_url} if database_url else {}
    if tls is not None:
        environ |= {"YIDI_TLS_CERT": str(tls.cert), "YIDI_TLS_KEY": str(tls.key), "YIDI_TLS_CA": str(tls.ca)}
    if spec.parent is not None:
        environ |= {"YIDI_PARENT_REGION": spec.parent, "YIDI_PARENT_ADDRESS": addresses[spec.parent]}
    children = topology.children_of(spec.region)
    if children:
        environ["YIDI_CHILDREN"] = ",".join(f"{child.region}={addresses[child.region]}" for child in children)
    host, _, port = addresses[spec.region].rpartition(":")
    return load_settings(
        environ=environ,
        overrides={
            "metrics_port": "off",
            "auto_migrate": True,
            "insecure": tls is None,
            **overrides,
            "role": spec.role.value,
            "region": spec.region,
            "name": spec.name,
            "host": host,
            "grpc_port": int(port),
            "data_dir": data_dir / f"{spec.region}-{spec.name}",
            "services": spec.services,
        },
    )


class Federation:
    """The running nodes of a topology by region, with one cached client channel per node and caller.

    ``pki`` is the development PKI the nodes serve mutual TLS with (None: they run insecure).
    """

    def __init__(self, topology: Topology, nodes: Mapping[str, Node], pki: Pki | None = None) -> None:
        self.topology = topology
        self.nodes = dict(nodes)
        self.pki = pki
        self._channels: dict[tuple[str, Identity | None], grpc.Channel] = {}

    def address(self, region: str) -> str:
        """``host:port`` of the node of ``region``."""
        return self.nodes[region].address

    def channel(self, region: str, as_: Identity | None = None) -> grpc.Channel:
        """A channel to the node of ``region`` for one caller, opened once and closed by :meth:`stop`.

        Over mutual TLS the channel presents ``as_``'s certificate (by default the national
        operator's). On insecure nodes a principal ``as_`` is named in the development
        header ``x-yidi-principal``, so the nodes still apply its rules; with no ``as_``
        the caller is the all-powerful developer.
        """
        identity = NATIONAL_OPERATOR if as_ is None and self.pki is not None else as_
        key = (region, identity)
        if key not in self._channels:
            self._channels[key] = self._open(self.address(region), identity)
        return self._channels[key]

    def _open(self, address: str, identity: Identity | None) -> grpc.Channel:
        if self.pki is None:
            channel = grpc.insecure_channel(address)
            if isinstance(identity, Principal):
                return grpc.intercept_channel(channel, _Naming(identity))
            return channel
        files = identity if isinstance(identity, TlsFiles) else self.pki.files(identity or NATIONAL_OPERATOR)
        return open_channel(address, ClientTls(files.cert, files.key, files.ca))

    def host_of(self, region: str, service: str | None = None) -> str:
        """The region of the node hosting ``region`` (KeyError when no node does)."""
        spec = self.topology.host_of(region, service)
        if spec is None:
            raise KeyError(f"no node of this federation hosts region {region}")
        return spec.region

    def stop(self, grace: float = 1.0) -> None:
        """Close the channels, then stop the nodes, children first. Safe to call twice."""
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
        for region in reversed(list(self.nodes)):
            self.nodes[region].stop(grace)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def start_federation(
    topology: Topology,
    data_dir: Path,
    database_url_for: DatabaseUrlFactory | None = None,
    *,
    base_port: int | None = None,
    host: str = LOOPBACK,
    start: Callable[[NodeSettings], Node] = start_node,
    pki: Pki | None = None,
    **overrides: Any,
) -> Federation:
    """Start every node of ``topology`` in process, parents and children wired; stop all on failure.

    Each node keeps its SQLite files in ``data_dir/<region>-<name>`` unless
    ``database_url_for`` gives it a database. ``overrides`` are node settings applied to
    every node (e.g. ``settlement_hold_timeout_s``, ``log_level``, ``metrics_port``).
    ``start`` starts one node from its settings (the demo gives its national node's
    clearing service a clock it can move to the month's end). With ``pki`` (holding every
    node's certificate, e.g. from :func:`init_demo_pki`) the nodes serve mutual TLS;
    without, they run insecure.
    """
    ports = plan_ports(topology, base_port, host)
    addresses = {region: f"{host}:{port}" for region, port in ports.items()}
    nodes: dict[str, Node] = {}
    try:
        for spec in topology.nodes:
            database_url = database_url_for() if database_url_for is not None else None
            tls = pki.node(spec.region) if pki is not None else None
            settings = node_settings(spec, topology, addresses, Path(data_dir), database_url, overrides, tls)
            nodes[spec.region] = start(settings)
    except BaseException:
        Federation(topology, nodes).stop(0)
        raise
    return Federation(topology, nodes, pki)


class _Naming(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Names a caller to an insecure development node in every call's metadata."""

    def __init__(self, principal: Principal) -> None:
        self._header = (PRINCIPAL_HEADER, principal.subject)

    def _named(self, details: Any) -> Any:
        return details._replace(metadata=[*(details.metadata or ()), self._header])

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._named(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._named(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._named(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._named(details), requests)


# -- a development PKI for a topology and the samples ------------------------------------------


def region_operator(region: str) -> Principal:
    """``operator/<region>/ops``: the operator of one node's medical insurance centre (reviews, its imports)."""
    return Principal(CallerRole.OPERATOR, "ops", region)


def institution(code: str) -> Principal:
    """A designated institution's HIS, named by its national code."""
    return Principal(CallerRole.INSTITUTION, code, code[1:7])


def sample_institutions(data: Path = SAMPLE_DATA) -> list[str]:
    """The national codes of the sample institutions (``institutions.csv``, as :func:`load_institutions` reads it)."""
    return [row["fixmedins_code"] for row in _institution_rows(data)[1]]


def demo_principals(topology: Topology = DEMO_TOPOLOGY, data: Path = SAMPLE_DATA) -> list[Principal]:
    """Everyone a demo of ``topology`` needs a certificate for: its nodes, the sample institutions,
    the national operator and channels, and one operator per node's region."""
    nodes = [Principal(CallerRole.NODE, spec.region, spec.region) for spec in topology.nodes]
    national = [NATIONAL_OPERATOR, NATIONAL_APP, NATIONAL_MINI_PROGRAM]
    operators = [*national, *(region_operator(spec.region) for spec in topology.nodes)]
    return [*nodes, *(institution(code) for code in sample_institutions(data)), *operators]


def init_demo_pki(
    root: Path,
    topology: Topology = DEMO_TOPOLOGY,
    data: Path = SAMPLE_DATA,
    hosts: Iterable[str] = DEFAULT_HOSTS,
) -> Pki:
    """A development PKI under ``root`` (its CA kept if there is one) for every :func:`demo_principals`."""
    principals = demo_principals(topology, data)
    return init_pki(
        root,
        nodes=[p.region for p in principals if p.role is CallerRole.NODE],
        institutions=[p.name for p in principals if p.role is CallerRole.INSTITUTION],
        operators=[(p.region, p.name) for p in principals if p.role is CallerRole.OPERATOR],
        hosts=hosts,
    )


def missing_files(pki: Pki, principals: Iterable[Principal]) -> list[Path]:
    """The certificate and key files of ``principals`` (and the CA) that ``pki`` lacks."""
    wanted = [pki.ca]
    for principal in principals:
        files = pki.files(principal)
        wanted += [files.cert, files.key]
    return [path for path in wanted if not path.is_file()]


# -- sample data -----------------------------------------------------------------------------


def _chunks(content: bytes) -> Iterator[bytes]:
    for start in range(0, len(content), _CHUNK_BYTES):
        yield content[start : start + _CHUNK_BYTES]


def _catalogue_messages(
    region: str, content: bytes
) -> Iterator[catalogue_service_pb2.ImportCatalogueRequest]:
    layer = (
        catalogue_pb2.CATALOGUE_LAYER_NATIONAL_BASE
        if region == NATIONAL_REGION
        else catalogue_pb2.CATALOGUE_LAYER_PROVINCIAL_OVERLAY
    )
    header = catalogue_service_pb2.ImportCatalogueHeader(
        request_id=message_id(region), admdvs=region, layer=layer, effective_date=SAMPLE_EFFECTIVE_DATE
    )
    yield catalogue_service_pb2.ImportCatalogueRequest(header=header)
    for chunk in _chunks(content):
        yield catalogue_service_pb2.ImportCatalogueRequest(csv_chunk=chunk)


def load_catalogues(federation: Federation, data: Path) -> list[str]:
    """Each province's catalogue into its province node; a national base (000000) into the national and every province node.

    A province's catalogue falls back per item to the national base held beside it, and
    the national base alone is read where it is asked for.
    """
    done = []
    holders = [
        spec.region
        for spec in federation.topology.nodes
        if spec.role in (Role.NATIONAL, Role.PROVINCE) and "catalogue" in spec.services
    ]
    for path in sorted((data / "catalogues").glob("*.csv")):
        region = path.name[:6]
        targets = holders if region == NATIONAL_REGION else [r for r in holders if r == region]
        for target in targets:
            stub = catalogue_service_pb2_grpc.CatalogueServiceStub(
                federation.channel(target, NATIONAL_OPERATOR)
            )
            version = stub.ImportCatalogue(
                _catalogue_messages(region, path.read_bytes()), timeout=_IMPORT_DEADLINE_S
            ).version
            done.append(f"{target}: catalogue {version.version_id}, {version.item_count} items ({path.name})")
    return done


def load_policies(federation: Federation, data: Path) -> list[str]:
    """Each insured region's policy (``<region>-<insutype>-<name>``) into the node hosting the region."""
    done = []
    for path in sorted((data / "policies").iterdir()):
        region, insutype = path.name[:6], path.name[7:10]
        host = federation.topology.host_of(region, "catalogue")
        if host is None or path.suffix not in _POLICY_FORMATS:
            continue
        policy = (
            policy_service_pb2_grpc.PolicyServiceStub(federation.channel(host.region, NATIONAL_OPERATOR))
            .ImportPolicy(
                policy_service_pb2.ImportPolicyRequest(
                    request_id=message_id(region),
                    insuplc_admdvs=region,
                    insutype=insutype,
                    effective_date=SAMPLE_EFFECTIVE_DATE,
                    format=_POLICY_FORMATS[path.suffix],
                    document=path.read_bytes(),
                ),
                timeout=_IMPORT_DEADLINE_S,
            )
            .policy
        )
        done.append(f"{host.region}: policy {policy.version_id} ({path.name})")
    return done


def _by_host(
    federation: Federation, regions: Iterable[tuple[str, Any]], service: str
) -> dict[str, list[Any]]:
    """Items grouped by the node hosting their region; items of regions no node hosts are dropped."""
    grouped: dict[str, list[Any]] = defaultdict(list)
    for region, item in regions:
        host = federation.topology.host_of(region, service)
        if host is not None:
            grouped[host.region].append(item)
    return grouped


def load_filing_data(federation: Federation, data: Path) -> list[str]:
    """Filing rules and insured persons of each insured region into the node hosting it."""
    done = []
    all_rules = read_rules(data / "filing-rules.toml")
    for host, rules_list in _by_host(
        federation, ((r.insuplc_admdvs, r) for r in all_rules), "filing"
    ).items():
        stub = filing_service_pb2_grpc.FilingServiceStub(federation.channel(host, NATIONAL_OPERATOR))
        for rules in rules_list:
            stub.SetFilingRules(
                filing_service_pb2.SetFilingRulesRequest(
                    request_id=message_id(rules.insuplc_admdvs), rules=rules
                ),
                timeout=_IMPORT_DEADLINE_S,
            )
            done.append(f"{host}: filing rules of {rules.insuplc_admdvs}")
    persons = read_persons(data / "persons.csv")
    for host, batch in _by_host(federation, ((p.insuplc_admdvs, p) for p in persons), "filing").items():
        answer = filing_service_pb2_grpc.FilingServiceStub(
            federation.channel(host, NATIONAL_OPERATOR)
        ).ImportInsuredPersons(
            filing_service_pb2.ImportInsuredPersonsRequest(request_id=message_id(host), persons=batch),
            timeout=_IMPORT_DEADLINE_S,
        )
        done.append(f"{host}: {len(answer.psn_nos)} insured persons")
    return done


def _csv_bytes(header: Sequence[str], rows: Sequence[Mapping[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _institution_messages(region: str, content: bytes) -> Iterator[registry_api.ImportInstitutionsRequest]:
    header = registry_api.ImportInstitutionsHeader(request_id=message_id(region), admdvs=region)
    yield registry_api.ImportInstitutionsRequest(header=header)
    for chunk in _chunks(content):
        yield registry_api.ImportInstitutionsRequest(csv_chunk=chunk)


def _institution_rows(data: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of the samples' ``institutions.csv``."""
    with (data / "institutions.csv").open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def load_institutions(federation: Federation, data: Path) -> list[str]:
    """Each institution into the registry of the deepest node hosting it, then pushed up to the national master copy.

    A registry answers for its own subtree from its own table (a city node for its city),
    and the national node holds the master copy, fed by each node's PushInstitutions to its
    parent: cities first, so their provinces pass the records on.
    """
    done = []
    header, rows = _institution_rows(data)
    for host, batch in _by_host(federation, ((row["admdvs"], row) for row in rows), "registry").items():
        stub = registry_grpc.InstitutionRegistryServiceStub(federation.channel(host, NATIONAL_OPERATOR))
        answer = stub.ImportInstitutions(
            _institution_messages(host, _csv_bytes(header, batch)), timeout=_IMPORT_DEADLINE_S
        )
        done.append(f"{host}: {answer.row_count} institutions")
    senders = [
        spec for spec in federation.topology.nodes if spec.parent is not None and "registry" in spec.services
    ]
    for spec in sorted(senders, key=lambda s: len(region_prefix(s.region)), reverse=True):
        pushed = _push_when_parent_answers(federation, spec.region)
        if pushed.sent_count:
            done.append(f"{spec.region}: pushed {pushed.sent_count} institutions to {pushed.parent_admdvs}")
    return done


def _push_when_parent_answers(federation: Federation, region: str) -> registry_api.PushInstitutionsResponse:
    """PushInstitutions at ``region``'s node, asked again while its parent is still coming up.

    A node started before its parent has found the parent's port closed (its health probe),
    and gRPC waits a moment before dialling again: the push meets UNAVAILABLE until then.
    """
    stub = registry_grpc.InstitutionRegistryServiceStub(federation.channel(region, NATIONAL_OPERATOR))
    deadline = time.monotonic() + _PARENT_WAIT_S
    while True:
        try:
            answer: registry_api.PushInstitutionsResponse = stub.PushInstitutions(
                registry_api.PushInstitutionsRequest(request_id=message_id(region)),
                timeout=_IMPORT_DEADLINE_S,
            )
            return answer
        except grpc.RpcError as error:
            if error.code() is not grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:  # type: ignore[attr-defined]
                raise
            time.sleep(0.2)


def load_sample_data(federation: Federation, data: Path = SAMPLE_DATA) -> list[str]:
    """Load the samples into the nodes that own them, through the stubs; one line per import."""
    return [
        *load_institutions(federation, data),
        *load_catalogues(federation, data),
        *load_policies(federation, data),
        *load_filing_data(federation, data),
    ]
