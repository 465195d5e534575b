"""Node configuration: defaults, TOML, environment overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from yidi_runtime.config import ConfigError, Peer, RateLimit, Role, load_settings, region_contains

CITY_TOML = """
[node]
role = "city"
region = "330400"
name = "jiaxing"
services = ["settlement", "registry"]

[listen]
grpc_port = 50411
metrics_port = 9411

[parent]
region = "330000"
address = "127.0.0.1:50400"

[database]
url = "postgresql://yidi@db.internal:5432/jiaxing"
"""


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_no_configuration_is_a_standalone_province_on_the_embedded_default() -> None:
    settings = load_settings(environ={})
    assert settings.role is Role.PROVINCE
    assert settings.parent is None
    assert settings.embedded and settings.migrate_on_start
    assert settings.services == ("filing", "registry", "catalogue", "settlement", "clearing", "collaboration")
    assert settings.host == "127.0.0.1"


def test_toml_file_is_read_and_postgres_url_gets_the_psycopg_driver(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, CITY_TOML), environ={})
    assert settings.role is Role.CITY and settings.region == "330400" and settings.label == "jiaxing"
    assert settings.parent == Peer("330000", "127.0.0.1:50400")
    assert settings.services == ("settlement", "registry")
    assert settings.database_url == "postgresql+psycopg://yidi@db.internal:5432/jiaxing"
    assert not settings.embedded and not settings.migrate_on_start


def test_environment_overrides_file_and_flags_override_environment(tmp_path: Path) -> None:
    environ = {"YIDI_GRPC_PORT": "6000", "YIDI_SERVICES": "filing, clearing", "YIDI_METRICS_PORT": "off"}
    settings = load_settings(write(tmp_path, CITY_TOML), environ=environ, overrides={"grpc_port": 7000})
    assert settings.grpc_port == 7000
    assert settings.services == ("filing", "clearing")
    assert settings.metrics_port is None


def test_data_dir_flag_takes_the_path_the_command_line_parsed(tmp_path: Path) -> None:
    settings = load_settings(environ={"YIDI_DATA_DIR": "/elsewhere"}, overrides={"data_dir": tmp_path})
    assert settings.data_dir == tmp_path


def test_children_from_environment() -> None:
    settings = load_settings(
        environ={
            "YIDI_ROLE": "national",
            "YIDI_REGION": "000000",
            "YIDI_CHILDREN": "110000=127.0.0.1:1,630000=h:2",
        }
    )
    assert settings.children == (Peer("110000", "127.0.0.1:1"), Peer("630000", "h:2"))


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"YIDI_REGION": "11"}, "YIDI_REGION"),
        ({"YIDI_ROLE": "county"}, "YIDI_ROLE"),
        ({"YIDI_GRPC_PORT": "70000"}, "YIDI_GRPC_PORT"),
        ({"YIDI_GRPC_PORT": "eighty"}, "YIDI_GRPC_PORT"),
        ({"YIDI_SERVICES": "filing,billing"}, "YIDI_SERVICES"),
        ({"YIDI_DATABASE_URL": "mysql://x/y"}, "YIDI_DATABASE_URL"),
        ({"YIDI_LOG_LEVEL": "loud"}, "YIDI_LOG_LEVEL"),
        ({"YIDI_REGION": "000000"}, "node.region"),
        ({"YIDI_REGION": "330400"}, "node.region"),
        ({"YIDI_ROLE": "national", "YIDI_REGION": "110000"}, "node.region"),
        ({"YIDI_ROLE": "city", "YIDI_REGION": "330400"}, "parent"),
        ({"YIDI_PARENT_ADDRESS": "127.0.0.1:1", "YIDI_PARENT_REGION": "630000"}, "parent.region"),
        ({"YIDI_PARENT_ADDRESS": "no-port", "YIDI_PARENT_REGION": "000000"}, "parent.address"),
        ({"YIDI_PARENT_ADDRESS": "127.0.0.1:1"}, "parent.region"),
        ({"YIDI_CHILDREN": "630100=127.0.0.1:1"}, "children[0].region"),
        ({"YIDI_CHILDREN": "630100"}, "YIDI_CHILDREN"),
        ({"YIDI_TLS_CERT": "/nonexistent.pem"}, "tls.key"),
        ({"YIDI_TOKENS_REVOKED": "/nonexistent/revoked-tokens"}, "YIDI_TOKENS_REVOKED"),
        ({"YIDI_TOKENS_REVOKED_CHECK_S": "-1"}, "YIDI_TOKENS_REVOKED_CHECK_S"),
        ({"YIDI_TOKENS_REVOKED_CHECK_S": "nan"}, "YIDI_TOKENS_REVOKED_CHECK_S"),
        ({"YIDI_TOKENS_REFRESH_MAX_DAYS": "400"}, "YIDI_TOKENS_REFRESH_MAX_DAYS"),
        ({"YIDI_SETTLEMENT_PROVINCE_CACHE_S": "-1"}, "YIDI_SETTLEMENT_PROVINCE_CACHE_S"),
        ({"YIDI_SETTLEMENT_PROVINCE_CACHE_S": "a while"}, "YIDI_SETTLEMENT_PROVINCE_CACHE_S"),
        ({"YIDI_QUOTA_ENABLED": "maybe"}, "YIDI_QUOTA_ENABLED"),
        ({"YIDI_QUOTA_INSTITUTION_RATE": "0"}, "YIDI_QUOTA_INSTITUTION_RATE"),
        ({"YIDI_QUOTA_NODE_RATE": "fast"}, "YIDI_QUOTA_NODE_RATE"),
        ({"YIDI_QUOTA_OPERATOR_RATE": "inf"}, "YIDI_QUOTA_OPERATOR_RATE"),
        ({"YIDI_QUOTA_OPERATOR_BURST": "0"}, "YIDI_QUOTA_OPERATOR_BURST"),
        ({"YIDI_QUOTA_CALLERS": "institution/H11010500001=50"}, "YIDI_QUOTA_CALLERS"),
        ({"YIDI_QUOTA_CALLERS": "hospital/H11010500001=5:10"}, "YIDI_QUOTA_CALLERS.hospital/H11010500001"),
        ({"YIDI_QUOTA_CALLERS": "node/110000=5:0.5"}, "YIDI_QUOTA_CALLERS.node/110000.burst"),
        (
            {"YIDI_QUOTA_CALLERS": "node/110000=1:2,yidi://node/110000=3:4"},
            "YIDI_QUOTA_CALLERS.yidi://node/110000",
        ),
    ],
)
def test_invalid_configuration_fails_fast_naming_the_key(environ: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=environ)
    assert caught.value.key == key
    assert key in str(caught.value)


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("[node]\nregion = 110000\n", "node.region"),
        ("[nodes]\nregion = '110000'\n", "nodes"),
        ("[listen]\ngrpc_port = true\n", "listen.grpc_port"),
        ("[[children]]\nregion = '120000'\n", "children[0].address"),
        ("[node\n", "node.toml"),
        ("[tokens]\nrevoked = '/nonexistent/revoked-tokens'\n", "tokens.revoked"),
        ("[tokens]\nrefresh_max_days = 'a month'\n", "tokens.refresh_max_days"),
        ("[settlement]\nprovince_cache_s = -5\n", "settlement.province_cache_s"),
        ("[settlement]\naudit_threshold_fen = 0\n", "settlement.audit_threshold_fen"),
        ("[quotas]\nnode_rate = true\n", "quotas.node_rate"),
        ("[quotas]\ncallers = 5\n", "quotas.callers"),
        (
            '[quotas.callers]\n"institution/H11010500001" = { rate = 5 }\n',
            "quotas.callers.institution/H11010500001",
        ),
        (
            '[quotas.callers]\n"operator/110000/ops" = { rate = -1, burst = 5 }\n',
            "quotas.callers.operator/110000/ops.rate",
        ),
    ],
)
def test_invalid_toml_names_the_key(tmp_path: Path, body: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, body), environ={})
    assert key in caught.value.key


def test_quotas_default_to_limits_no_honest_caller_meets() -> None:
    settings = load_settings(environ={})
    assert settings.quota_enabled and settings.quota_callers == {}
    assert (settings.quota_institution_rate, settings.quota_institution_burst) == (50, 200)
    assert (settings.quota_node_rate, settings.quota_node_burst) == (2000, 4000)
    assert (settings.quota_operator_rate, settings.quota_operator_burst) == (20, 50)


QUOTAS_TOML = """
[quotas]
institution_rate = 10
institution_burst = 20
node_rate = 0.5

[quotas.callers]
"institution/H11010500001" = { rate = 200, burst = 400 }
"yidi://operator/110000/batch.import" = { rate = 1.5, burst = 3 }
"""


def test_quotas_from_toml_with_callers_of_their_own_and_environment_overrides(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, QUOTAS_TOML), environ={"YIDI_QUOTA_NODE_BURST": "7"})
    assert (settings.quota_institution_rate, settings.quota_institution_burst) == (10, 20)
    assert (settings.quota_node_rate, settings.quota_node_burst) == (0.5, 7)
    assert settings.quota_callers == {
        "institution/H11010500001": RateLimit(200, 400),
        "operator/110000/batch.import": RateLimit(1.5, 3),
    }
    replaced = load_settings(
        write(tmp_path, QUOTAS_TOML),
        environ={"YIDI_QUOTA_CALLERS": " node/330000=5000:10000 , ", "YIDI_QUOTA_ENABLED": "0"},
    )
    assert replaced.quota_callers == {"node/330000": RateLimit(5000, 10000)}
    assert not replaced.quota_enabled


def test_tls_files_must_exist_together(tmp_path: Path) -> None:
    for name in ("cert", "key", "ca"):
        (tmp_path / f"{name}.pem").write_text("x")
    settings = load_settings(
        environ={f"YIDI_TLS_{n.upper()}": str(tmp_path / f"{n}.pem") for n in ("cert", "key", "ca")}
    )
    assert settings.tls is not None and settings.tls.ca == tmp_path / "ca.pem"


def test_tokens_section_names_the_revocation_list_and_the_refresh_limit(tmp_path: Path) -> None:
    listed = tmp_path / "revoked-tokens"
    listed.touch()
    body = f"[tokens]\nrevoked = '{listed}'\nrevoked_check_s = 0\nrefresh_max_days = 7\n"
    settings = load_settings(write(tmp_path, body), environ={})
    assert (settings.tokens_revoked, settings.tokens_revoked_check_s) == (listed, 0)
    assert settings.tokens_refresh_max_days == 7
    unset = load_settings(write(tmp_path, body), environ={"YIDI_TOKENS_REVOKED": ""})
    assert unset.tokens_revoked is None
    defaults = load_settings(environ={})
    assert (defaults.tokens_revoked, defaults.tokens_revoked_check_s, defaults.tokens_refresh_max_days) == (
        None,
        5.0,
        30,
    )


def test_missing_file_is_reported() -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings("/nonexistent/node.toml", environ={})


@pytest.mark.parametrize(
    ("ancestor", "region", "inside"),
    [
        ("000000", "630000", True),
        ("330000", "330400", True),
        ("330000", "330402", True),
        ("330000", "630000", False),
        ("330400", "330402", True),
        ("330400", "330500", False),
        ("330402", "330402", True),
    ],
)
def test_region_tree_containment(ancestor: str, region: str, inside: bool) -> None:
    assert region_contains(ancestor, region) is inside


def test_a_city_node_keeps_its_provinces_answers_for_a_configured_bound(tmp_path: Path) -> None:
    assert load_settings(environ={}).settlement_province_cache_s == 30.0
    settings = load_settings(write(tmp_path, "[settlement]\nprovince_cache_s = 0\n"), environ={})
    assert settings.settlement_province_cache_s == 0.0
    overridden = load_settings(environ={"YIDI_SETTLEMENT_PROVINCE_CACHE_S": "5"})
    assert overridden.settlement_province_cache_s == 5.0


def test_the_large_bill_audit_threshold_is_the_national_30000_yuan_unless_configured(tmp_path: Path) -> None:
    assert load_settings(environ={}).settlement_audit_threshold_fen == 3_000_000
    settings = load_settings(write(tmp_path, "[settlement]\naudit_threshold_fen = 2000000\n"), environ={})
    assert settings.settlement_audit_threshold_fen == 2_000_000
    overridden = load_settings(environ={"YIDI_SETTLEMENT_AUDIT_THRESHOLD_FEN": "5000000"})
    assert overridden.settlement_audit_threshold_fen == 5_000_000
