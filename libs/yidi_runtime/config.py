"""Node configuration: a TOML file, then ``YIDI_*`` environment overrides, then command-line flags.

National, provincial and city nodes run the same program (DESIGN.md principle 3); this is
the only thing that tells them apart. Invalid configuration fails fast with a message
naming the offending key, so an operator never discovers a typo from a stack trace.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any

from yidi_core.placement import AUDIT_THRESHOLD_FEN
from yidi_runtime.identity import parse_subject

NATIONAL_REGION = "000000"
SERVICE_NAMES: tuple[str, ...] = (
    "filing",
    "registry",
    "catalogue",
    "settlement",
    "clearing",
    "collaboration",
)

_REGION = re.compile(r"\d{6}")
_ADDRESS = re.compile(r"[A-Za-z0-9.\-]+:\d{1,5}|\[[0-9a-fA-F:]+\]:\d{1,5}")


class Role(StrEnum):
    """Where a node sits in the region tree."""

    NATIONAL = "national"
    PROVINCE = "province"
    CITY = "city"


class ConfigError(ValueError):
    """A configuration value is missing or invalid; ``key`` names it as the operator wrote it."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"invalid configuration {key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class Peer:
    """Another node this one talks to: its region code and gRPC address."""

    region: str
    address: str


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for mutual TLS; all three or none (insecure local development)."""

    cert: Path
    key: Path
    ca: Path


@dataclass(frozen=True)
class RateLimit:
    """A caller's token bucket: refilled at ``rate_per_s`` calls a second, holding at most ``burst``."""

    rate_per_s: float
    burst: int


@dataclass(frozen=True)
class NodeSettings:
    """Everything one node needs to start; build it with :func:`load_settings`."""

    role: Role = Role.PROVINCE
    region: str = "110000"
    name: str = ""
    host: str = "127.0.0.1"
    grpc_port: int = 50051
    metrics_port: int | None = 9464
    data_dir: Path = Path("data")
    services: tuple[str, ...] = SERVICE_NAMES
    database_url: str | None = None
    parent: Peer | None = None
    children: tuple[Peer, ...] = ()
    tls: TlsFiles | None = None
    insecure: bool = False
    """Plaintext without authentication, for local development only; must be asked for explicitly."""
    token_port: int | None = None
    """A second listener (server-side TLS only) for HIS platforms that authenticate with a signed token."""
    tokens_revoked: Path | None = None
    """The node's list of revoked token ids (:class:`yidi_runtime.tokens.RevocationList`); None: none."""
    tokens_revoked_check_s: float = 5.0
    """How often the node looks for changes to that list (0: on every call)."""
    tokens_refresh_max_days: int = 30
    """For how long after an operator issued a token its chain may be refreshed (0: never)."""
    max_workers: int = 32
    health_interval_s: float = 5.0
    parent_probe_interval_s: float = 5.0
    """How often a node with a parent asks the parent's health (:mod:`yidi_runtime.parent_watch`)."""
    parent_unreachable_after_s: float = 30.0
    """After how long without an answer from the parent its cross-node services report NOT_SERVING."""
    log_level: str = "info"
    log_format: str = "auto"
    auto_migrate: bool | None = None
    settlement_hold_timeout_s: float = 300.0
    settlement_audit_threshold_fen: int = AUDIT_THRESHOLD_FEN
    """A cross-province inpatient bill of this much or more opens a treatment-place audit case (大额协查)."""
    settlement_province_cache_s: float = 30.0
    """How long a city node keeps its province's institution checks and catalogue entries (0: never)."""
    internal_address: str | None = None
    """Where this node's services answer each other (set by the server at start, not configured)."""
    clearing_issue_day: int = 10
    clearing_confirmation_days: int = 5
    clearing_transfer_deadline_day: int = 25
    clearing_advance_yellow_ratio: Decimal = Decimal("0.70")
    clearing_advance_red_ratio: Decimal = Decimal("0.90")
    clearing_alert_interval_s: float = 60.0
    clearing_advance_months: Decimal = Decimal("2")
    """Advance sizing: a province's proposed advance is this many months of its average monthly payable."""
    clearing_advance_minimum: Decimal = Decimal("0")
    """Advance sizing: the least advance proposed (yuan), also for a province with no cleared history."""
    clearing_stale_hold_s: float = 3600.0
    """Reconciliation reports a hold still unconfirmed after this long as STALE_HOLD."""
    collaboration_answer_working_days: int = 5
    """Working days the addressee of a collaboration ticket has to answer it (from opening or a follow-up)."""
    collaboration_close_working_days: int = 10
    """Working days the opener of an answered ticket has to close it or follow up."""
    collaboration_holidays: frozenset[date] = frozenset()
    """Days off besides weekends in the tickets' working-day calendar."""
    collaboration_working_weekends: frozenset[date] = frozenset()
    """Weekend days worked instead (调休) in that calendar."""
    quota_enabled: bool = True
    """Per-caller rate limits (:mod:`yidi_runtime.quotas`); the defaults are far above any honest caller."""
    quota_institution_rate: float = 50.0
    quota_institution_burst: int = 200
    quota_node_rate: float = 2000.0
    quota_node_burst: int = 4000
    quota_operator_rate: float = 20.0
    quota_operator_burst: int = 50
    quota_callers: Mapping[str, RateLimit] = field(default_factory=dict)
    """Limits for named callers (by subject, ``institution/H…``) instead of their role's."""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Short node label for logs and metrics: its name, else its role and region."""
        return self.name or f"{self.role.value}-{self.region}"

    @property
    def self_address(self) -> str:
        """The address a service dials to call another service of this same node.

        The node's in-process address once it runs (:mod:`yidi_runtime.local_calls`: no
        transport, and calls between services never wait behind the outside calls that
        caused them), else its public port.
        """
        if self.internal_address:
            return self.internal_address
        host = "127.0.0.1" if self.host in {"", "0.0.0.0", "::", "[::]"} else self.host
        return f"{host}:{self.grpc_port}"

    @property
    def embedded(self) -> bool:
        """True when the node keeps its data in SQLite files under ``data_dir``."""
        return self.database_url is None or self.database_url.startswith("sqlite")

    @property
    def migrate_on_start(self) -> bool:
        """Embedded nodes migrate themselves; production databases are upgraded by `yidi db upgrade`."""
        return self.embedded if self.auto_migrate is None else self.auto_migrate


def _str(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"must be a string, got {value!r}")
    return value.strip()


def _path(key: str, value: Any) -> Path:
    return value if isinstance(value, Path) else Path(_str(key, value))


def _int_in(low: int, high: int) -> Callable[[str, Any], int]:
    def parse(key: str, value: Any) -> int:
        if isinstance(value, bool):
            raise ConfigError(key, f"must be a whole number, got {value!r}")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError(key, f"must be a whole number, got {value!r}") from None
        if not low <= number <= high:
            raise ConfigError(key, f"must be between {low} and {high}, got {number}")
        return number

    return parse


def _seconds(*, zero: bool) -> Callable[[str, Any], float]:
    def parse(key: str, value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(key, f"must be a number of seconds, got {value!r}") from None
        if not math.isfinite(number) or number < 0 or (number == 0 and not zero):
            raise ConfigError(key, f"must be {'zero or more' if zero else 'positive'}, got {number}")
        return number

    return parse


_float_positive = _seconds(zero=False)


def _ratio(key: str, value: Any) -> Decimal:
    """A usage ratio as a decimal string in (0, 1] (``"0.70"``); floats never touch money thresholds."""
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ConfigError(key, f'must be a decimal ratio such as "0.70", got {value!r}') from None
    if not (number.is_finite() and 0 < number <= 1):
        raise ConfigError(key, f"must be above 0 and at most 1, got {value!r}")
    return number


def _decimal(key: str, value: Any, example: str) -> Decimal:
    if isinstance(value, bool):
        raise ConfigError(key, f'must be a decimal number such as "{example}", got {value!r}')
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ConfigError(key, f'must be a decimal number such as "{example}", got {value!r}') from None
    if not number.is_finite():
        raise ConfigError(key, f'must be a decimal number such as "{example}", got {value!r}')
    return number


def _months(key: str, value: Any) -> Decimal:
    """A number of months in (0, 12] (``2``, ``"1.5"``): how many months of outflow an advance covers."""
    number = _decimal(key, value, "2")
    if not 0 < number <= 12:
        raise ConfigError(key, f"must be above 0 and at most 12 months, got {value!r}")
    return number


def _yuan(key: str, value: Any) -> Decimal:
    """An amount of yuan, at least 0 and with at most two decimals (``"500000.00"``)."""
    number = _decimal(key, value, "500000.00")
    if number < 0 or number != number.quantize(Decimal("0.01")):
        raise ConfigError(key, f"must be yuan at or above 0 with at most two decimals, got {value!r}")
    return number


def _rate(key: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ConfigError(key, f"must be a number of calls per second, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(key, f"must be a number of calls per second, got {value!r}") from None
    if not (math.isfinite(number) and number > 0):
        raise ConfigError(key, f"must be a positive number of calls per second, got {value!r}")
    return number


_burst = _int_in(1, 1_000_000)


def _quota_callers(key: str, value: Any) -> dict[str, RateLimit]:
    """Limits by caller subject: a TOML table of ``"institution/H…" = { rate = 200, burst = 400 }``,
    or ``SUBJECT=RATE:BURST,…`` in the environment."""
    if isinstance(value, str):
        entries: dict[str, Any] = {}
        for part in filter(str.strip, value.split(",")):
            subject, equals, limit = part.partition("=")
            rate, colon, burst = limit.partition(":")
            if not (equals and colon):
                raise ConfigError(key, f"each caller must be SUBJECT=RATE:BURST, got {part.strip()!r}")
            entries[subject.strip()] = {"rate": rate, "burst": burst}
    elif isinstance(value, Mapping):
        entries = dict(value)
    else:
        raise ConfigError(key, f"must be a table of caller subjects, got {value!r}")
    limits: dict[str, RateLimit] = {}
    for subject, raw in entries.items():
        where = f"{key}.{subject}"
        principal = parse_subject(str(subject))
        if principal is None:
            raise ConfigError(
                where, "names no caller: node/<region>, institution/<code> or operator/<region>/<name>"
            )
        if principal.subject in limits:
            raise ConfigError(where, f"{principal.subject} is given twice")
        if not isinstance(raw, Mapping) or set(raw) != {"rate", "burst"}:
            raise ConfigError(where, f"must be {{ rate = …, burst = … }}, got {raw!r}")
        limits[principal.subject] = RateLimit(
            _rate(f"{where}.rate", raw["rate"]), _burst(f"{where}.burst", raw["burst"])
        )
    return limits


def _dates(key: str, value: Any) -> frozenset[date]:
    """Days as a TOML array of ``"yyyy-mm-dd"`` strings (or dates), or ``yyyy-mm-dd,…`` in the environment."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple | frozenset | set):
        raise ConfigError(key, f"must be a list of yyyy-mm-dd days, got {value!r}")
    days = set()
    for item in items:
        if isinstance(item, date):
            days.add(item)
            continue
        text = str(item).strip()
        if not text:
            continue
        try:
            days.add(date.fromisoformat(text))
        except ValueError:
            raise ConfigError(key, f"must be a list of yyyy-mm-dd days, got {text!r}") from None
    return frozenset(days)


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(key, f"must be true or false, got {value!r}")


def _port(key: str, value: Any) -> int:
    return _int_in(0, 65535)(key, value)


def _revocation_list(key: str, value: Any) -> Path | None:
    """A file that exists (a mistyped path must not silently revoke nothing); empty: no list."""
    if isinstance(value, str) and not value.strip():
        return None
    path = _path(key, value)
    if not path.is_file() or not os.access(path, os.R_OK):
        raise ConfigError(
            key,
            f"file not found or not readable: {path} (an empty file revokes nothing; `yidi certs revoke` creates it)",
        )
    return path


def _optional_port(key: str, value: Any) -> int | None:
    if value in ("", "off", "none", None):
        return None
    return _port(key, value)


def _role(key: str, value: Any) -> Role:
    try:
        return Role(_str(key, value).lower())
    except ValueError:
        raise ConfigError(key, f"must be one of national, province, city; got {value!r}") from None


def _region(key: str, value: Any) -> str:
    text = _str(key, value)
    if not _REGION.fullmatch(text):
        raise ConfigError(key, f"must be a 6-digit region code (admdvs), got {text!r}")
    return text


def _address(key: str, value: Any) -> str:
    text = _str(key, value)
    if not _ADDRESS.fullmatch(text):
        raise ConfigError(key, f"must be host:port, got {text!r}")
    return text


def _services(key: str, value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigError(key, f"must be a list of service names, got {value!r}")
    names = tuple(_str(key, item).lower() for item in items if str(item).strip())
    unknown = [name for name in names if name not in SERVICE_NAMES]
    if unknown:
        raise ConfigError(key, f"unknown service {unknown[0]!r}; known: {', '.join(SERVICE_NAMES)}")
    if not names:
        raise ConfigError(key, "must name at least one service")
    return tuple(dict.fromkeys(names))


def _database_url(key: str, value: Any) -> str | None:
    text = _str(key, value)
    if not text:
        return None
    scheme = text.split("://", 1)[0]
    if scheme in {"postgresql", "postgres", "postgresql+psycopg"}:
        return "postgresql+psycopg://" + text.split("://", 1)[1] if "://" in text else text
    if scheme.startswith("sqlite"):
        return text
    raise ConfigError(key, f"must be a postgresql:// or sqlite:// URL, got scheme {scheme!r}")


def _log_level(key: str, value: Any) -> str:
    text = _str(key, value).lower()
    if text not in {"debug", "info", "warning", "error"}:
        raise ConfigError(key, f"must be debug, info, warning or error; got {text!r}")
    return text


def _log_format(key: str, value: Any) -> str:
    text = _str(key, value).lower()
    if text not in {"auto", "json", "console"}:
        raise ConfigError(key, f"must be auto, json or console; got {text!r}")
    return text


def _peers_from_env(key: str, value: Any) -> list[dict[str, str]]:
    """``YIDI_CHILDREN=131000=127.0.0.1:5001,140000=127.0.0.1:5002``."""
    peers = []
    for part in _str(key, value).split(","):
        if not part.strip():
            continue
        region, sep, address = part.partition("=")
        if not sep:
            raise ConfigError(key, f"each child must be REGION=HOST:PORT, got {part!r}")
        peers.append({"region": region.strip(), "address": address.strip()})
    return peers


# (TOML section, TOML key, environment variable, parser, settings attribute)
_SCALARS: tuple[tuple[str, str, str, Callable[[str, Any], Any], str], ...] = (
    ("node", "role", "YIDI_ROLE", _role, "role"),
    ("node", "region", "YIDI_REGION", _region, "region"),
    ("node", "name", "YIDI_NAME", _str, "name"),
    ("node", "data_dir", "YIDI_DATA_DIR", _path, "data_dir"),
    ("node", "services", "YIDI_SERVICES", _services, "services"),
    ("node", "max_workers", "YIDI_MAX_WORKERS", _int_in(1, 1024), "max_workers"),
    ("node", "health_interval_s", "YIDI_HEALTH_INTERVAL_S", _float_positive, "health_interval_s"),
    (
        "node",
        "parent_probe_interval_s",
        "YIDI_PARENT_PROBE_INTERVAL_S",
        _float_positive,
        "parent_probe_interval_s",
    ),
    (
        "node",
        "parent_unreachable_after_s",
        "YIDI_PARENT_UNREACHABLE_AFTER_S",
        _float_positive,
        "parent_unreachable_after_s",
    ),
    ("listen", "host", "YIDI_HOST", _str, "host"),
    ("listen", "grpc_port", "YIDI_GRPC_PORT", _port, "grpc_port"),
    ("listen", "metrics_port", "YIDI_METRICS_PORT", _optional_port, "metrics_port"),
    ("listen", "token_port", "YIDI_TOKEN_PORT", _optional_port, "token_port"),
    ("tls", "insecure", "YIDI_TLS_INSECURE", _bool, "insecure"),
    ("tokens", "revoked", "YIDI_TOKENS_REVOKED", _revocation_list, "tokens_revoked"),
    (
        "tokens",
        "revoked_check_s",
        "YIDI_TOKENS_REVOKED_CHECK_S",
        _seconds(zero=True),
        "tokens_revoked_check_s",
    ),
    (
        "tokens",
        "refresh_max_days",
        "YIDI_TOKENS_REFRESH_MAX_DAYS",
        _int_in(0, 366),
        "tokens_refresh_max_days",
    ),
    ("database", "url", "YIDI_DATABASE_URL", _database_url, "database_url"),
    ("database", "auto_migrate", "YIDI_AUTO_MIGRATE", _bool, "auto_migrate"),
    ("log", "level", "YIDI_LOG_LEVEL", _log_level, "log_level"),
    ("log", "format", "YIDI_LOG_FORMAT", _log_format, "log_format"),
    (
        "settlement",
        "hold_timeout_s",
        "YIDI_SETTLEMENT_HOLD_TIMEOUT_S",
        _float_positive,
        "settlement_hold_timeout_s",
    ),
    (
        "settlement",
        "audit_threshold_fen",
        "YIDI_SETTLEMENT_AUDIT_THRESHOLD_FEN",
        _int_in(1, 10**12),
        "settlement_audit_threshold_fen",
    ),
    (
        "settlement",
        "province_cache_s",
        "YIDI_SETTLEMENT_PROVINCE_CACHE_S",
        _seconds(zero=True),
        "settlement_province_cache_s",
    ),
    # Days of the month stop at 28 so that every month has them.
    ("clearing", "issue_day", "YIDI_CLEARING_ISSUE_DAY", _int_in(1, 28), "clearing_issue_day"),
    (
        "clearing",
        "confirmation_days",
        "YIDI_CLEARING_CONFIRMATION_DAYS",
        _int_in(1, 60),
        "clearing_confirmation_days",
    ),
    (
        "clearing",
        "transfer_deadline_day",
        "YIDI_CLEARING_TRANSFER_DEADLINE_DAY",
        _int_in(1, 28),
        "clearing_transfer_deadline_day",
    ),
    (
        "clearing",
        "advance_yellow_ratio",
        "YIDI_CLEARING_ADVANCE_YELLOW_RATIO",
        _ratio,
        "clearing_advance_yellow_ratio",
    ),
    (
        "clearing",
        "advance_red_ratio",
        "YIDI_CLEARING_ADVANCE_RED_RATIO",
        _ratio,
        "clearing_advance_red_ratio",
    ),
    (
        "clearing",
        "alert_interval_s",
        "YIDI_CLEARING_ALERT_INTERVAL_S",
        _float_positive,
        "clearing_alert_interval_s",
    ),
    ("clearing", "advance_months", "YIDI_CLEARING_ADVANCE_MONTHS", _months, "clearing_advance_months"),
    ("clearing", "advance_minimum", "YIDI_CLEARING_ADVANCE_MINIMUM", _yuan, "clearing_advance_minimum"),
    (
        "clearing",
        "stale_hold_s",
        "YIDI_CLEARING_STALE_HOLD_S",
        _float_positive,
        "clearing_stale_hold_s",
    ),
    (
        "collaboration",
        "answer_working_days",
        "YIDI_COLLABORATION_ANSWER_WORKING_DAYS",
        _int_in(1, 60),
        "collaboration_answer_working_days",
    ),
    (
        "collaboration",
        "close_working_days",
        "YIDI_COLLABORATION_CLOSE_WORKING_DAYS",
        _int_in(1, 60),
        "collaboration_close_working_days",
    ),
    ("collaboration", "holidays", "YIDI_COLLABORATION_HOLIDAYS", _dates, "collaboration_holidays"),
    (
        "collaboration",
        "working_weekends",
        "YIDI_COLLABORATION_WORKING_WEEKENDS",
        _dates,
        "collaboration_working_weekends",
    ),
    ("quotas", "enabled", "YIDI_QUOTA_ENABLED", _bool, "quota_enabled"),
    *(
        entry
        for role in ("institution", "node", "operator")
        for entry in (
            ("quotas", f"{role}_rate", f"YIDI_QUOTA_{role.upper()}_RATE", _rate, f"quota_{role}_rate"),
            ("quotas", f"{role}_burst", f"YIDI_QUOTA_{role.upper()}_BURST", _burst, f"quota_{role}_burst"),
        )
    ),
    ("quotas", "callers", "YIDI_QUOTA_CALLERS", _quota_callers, "quota_callers"),
)
_KNOWN_SECTIONS = {section for section, *_ in _SCALARS} | {"parent", "children"}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(str(path), "file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None


def _peer(key: str, raw: Any) -> Peer:
    if not isinstance(raw, Mapping):
        raise ConfigError(key, "must be a table with region and address")
    for required in ("region", "address"):
        if required not in raw:
            raise ConfigError(f"{key}.{required}", "is required")
    return Peer(_region(f"{key}.region", raw["region"]), _address(f"{key}.address", raw["address"]))


def _tls(key: str, raw: Mapping[str, Any]) -> TlsFiles | None:
    present = {name: raw.get(name) for name in ("cert", "key", "ca") if raw.get(name)}
    if not present:
        return None
    missing = [name for name in ("cert", "key", "ca") if name not in present]
    if missing:
        raise ConfigError(f"{key}.{missing[0]}", "is required when any TLS file is given")
    paths = {name: Path(_str(f"{key}.{name}", value)) for name, value in present.items()}
    for name, path in paths.items():
        if not path.is_file():
            raise ConfigError(f"{key}.{name}", f"file not found: {path}")
    return TlsFiles(paths["cert"], paths["key"], paths["ca"])


def load_settings(
    config_file: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> NodeSettings:
    """Build validated settings from a TOML file, ``YIDI_*`` variables and explicit overrides.

    ``overrides`` uses settings attribute names (``grpc_port``, ``data_dir``, …) and wins over
    the environment, which wins over the file. Raises :class:`ConfigError` naming the key.
    """
    env = os.environ if environ is None else environ
    document = _read_toml(Path(config_file)) if config_file else {}
    unknown = sorted(set(document) - _KNOWN_SECTIONS)
    if unknown:
        raise ConfigError(unknown[0], f"unknown section; known: {', '.join(sorted(_KNOWN_SECTIONS))}")

    values: dict[str, Any] = {}
    for section, key, env_name, parse, attribute in _SCALARS:
        table = document.get(section, {})
        if not isinstance(table, Mapping):
            raise ConfigError(section, "must be a table")
        if key in table:
            values[attribute] = parse(f"{section}.{key}", table[key])
        if env_name in env:
            values[attribute] = parse(env_name, env[env_name])
    for attribute, value in (overrides or {}).items():
        if value is None:
            continue
        parser = next((p for _, _, _, p, a in _SCALARS if a == attribute), None)
        if parser is None:
            raise ConfigError(attribute, "is not a node setting")
        values[attribute] = parser(f"--{attribute.replace('_', '-')}", value)

    parent_raw = dict(document.get("parent", {}))
    if "YIDI_PARENT_ADDRESS" in env:
        parent_raw["address"] = env["YIDI_PARENT_ADDRESS"]
    if "YIDI_PARENT_REGION" in env:
        parent_raw["region"] = env["YIDI_PARENT_REGION"]
    if parent_raw:
        values["parent"] = _peer("parent", parent_raw)

    children_raw = document.get("children", [])
    if "YIDI_CHILDREN" in env:
        children_raw = _peers_from_env("YIDI_CHILDREN", env["YIDI_CHILDREN"])
    if not isinstance(children_raw, list):
        raise ConfigError("children", "must be an array of tables ([[children]])")
    values["children"] = tuple(_peer(f"children[{i}]", raw) for i, raw in enumerate(children_raw))

    tls_raw = {key: value for key, value in document.get("tls", {}).items() if key != "insecure"}
    for name in ("cert", "key", "ca"):
        if f"YIDI_TLS_{name.upper()}" in env:
            tls_raw[name] = env[f"YIDI_TLS_{name.upper()}"]
    values["tls"] = _tls("tls", tls_raw)

    settings = replace(NodeSettings(), **values)
    _check_tree(settings)
    _check_clearing(settings)
    return settings


def check_transport(settings: NodeSettings) -> None:
    """A node runs with mutual TLS, or insecure because its operator said so; never by omission.

    Checked when a node starts (settings alone may be read by tools that start nothing).
    """
    if settings.tls is None and not settings.insecure:
        raise ConfigError(
            "tls",
            "no TLS files configured: give [tls] cert, key and ca (`yidi certs init` makes a development set), "
            "or set [tls] insecure = true (YIDI_TLS_INSECURE=1, `yidi serve --insecure`) for local development",
        )
    if settings.tls is not None and settings.insecure:
        raise ConfigError("tls.insecure", "cannot be true when TLS files are configured")
    if settings.token_port is not None and settings.tls is None:
        raise ConfigError("listen.token_port", "needs [tls] files: tokens are only accepted over TLS")


def _check_clearing(settings: NodeSettings) -> None:
    """The red advance-usage line lies above the yellow one, or the alerts would skip a level."""
    if settings.clearing_advance_red_ratio <= settings.clearing_advance_yellow_ratio:
        raise ConfigError(
            "clearing.advance_red_ratio",
            f"must be above clearing.advance_yellow_ratio ({settings.clearing_advance_yellow_ratio}), "
            f"got {settings.clearing_advance_red_ratio}",
        )


def _check_tree(settings: NodeSettings) -> None:
    """The node's place in the region tree must be coherent before anything starts."""
    region, role = settings.region, settings.role
    if role is Role.NATIONAL:
        if region != NATIONAL_REGION:
            raise ConfigError("node.region", f"a national node's region is {NATIONAL_REGION}, got {region}")
        if settings.parent is not None:
            raise ConfigError("parent", "a national node has no parent")
    elif region == NATIONAL_REGION:
        raise ConfigError("node.region", f"{NATIONAL_REGION} is reserved for the national node")
    elif role is Role.PROVINCE and not region.endswith("0000"):
        raise ConfigError("node.region", f"a province node's region ends in 0000, got {region}")
    elif role is Role.CITY and region.endswith("0000"):
        raise ConfigError("node.region", f"a city node's region is a city or county code, got {region}")
    if role is Role.CITY and settings.parent is None:
        raise ConfigError("parent", "a city node needs its province as parent")
    if settings.parent is not None and not region_contains(settings.parent.region, region):
        raise ConfigError("parent.region", f"{settings.parent.region} does not contain {region}")
    for index, child in enumerate(settings.children):
        if child.region == region or not region_contains(region, child.region):
            raise ConfigError(f"children[{index}].region", f"{child.region} is not below {region}")


def region_contains(ancestor: str, region: str) -> bool:
    """Whether ``region`` lies in the subtree of ``ancestor`` (000000 contains every region)."""
    if ancestor == NATIONAL_REGION:
        return True
    if ancestor.endswith("0000"):
        return region[:2] == ancestor[:2]
    if ancestor.endswith("00"):
        return region[:4] == ancestor[:4]
    return region == ancestor
