"""Configuration validation: every error names the key that is wrong."""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path
from typing import Any

import pytest

from dicomguard.cli.gateway import main
from dicomguard.gateway.auth import hash_passcode, verify_passcode
from dicomguard.gateway.config import ConfigError, load_config, parse_config

MINIMAL: dict[str, Any] = {
    "listen": [{"address": "127.0.0.1", "port": 11112}],
    "route": [{"called_aet": "PACS", "backend_host": "127.0.0.1", "backend_port": 104}],
    "identity": {"modality": {"operations": ["ECHO", "STORE"]}},
    "auth": {"default_identity": "modality"},
}


def _with(path: str, value: Any) -> dict[str, Any]:
    raw = deepcopy(MINIMAL)
    node: Any = raw
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node.setdefault(k, {})
    if isinstance(node, list):
        node[int(keys[-1])] = value
    else:
        node[keys[-1]] = value
    return raw


def test_minimal_config_defaults() -> None:
    cfg = parse_config(deepcopy(MINIMAL))
    route = cfg.route_for("PACS")
    assert route is not None and route.backend_aet == "PACS" and route.user_identity == "strip"
    assert cfg.limits.max_command_fragments == 4


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (_with("listen.0.port", 70000), "listen[0].port"),
        (_with("listen.0.address", "gateway.example"), "listen[0].address"),
        (_with("route.0.backend_port", "104"), "route[0].backend_port"),
        (_with("route.0.called_aet", "A" * 17), "route[0].called_aet"),
        (_with("route.0.user_identity", "forward"), "route[0].user_identity"),
        (_with("identity.modality.operations", ["ECHO", "DELETE"]),
         "identity.modality.operations[1]"),
        (_with("auth.default_identity", "nobody"), "auth.default_identity"),
        (_with("sources.allow", ["127.0.0.0/33"]), "sources.allow[0]"),
        (_with("client", [{"calling_aet": "CT", "sources": ["x"]}]), "client[0].sources[0]"),
        (_with("client", [{"calling_aet": "CT", "sources": ["127.0.0.1"], "identity": "x"}]),
         "client[0].identity"),
        (_with("user", [{"name": "a", "passcode_hash": "plaintext", "identity": "modality"}]),
         "user[0].passcode_hash"),
        (_with("jwt", {"algorithms": ["HS256"], "secret": "short"}), "jwt.secret"),
        (_with("jwt", {"algorithms": ["none"]}), "jwt.algorithms[0]"),
        (_with("listen.0.tls", True), "tls"),
        (_with("audit", {"syslog": "syslog.example:514"}), "audit.syslog"),
        (_with("limits", {"max_command_bytes": 0}), "limits.max_command_bytes"),
        (_with("routes", []), "routes"),
        ({**deepcopy(MINIMAL), "route": []}, "route"),
    ],
)
def test_errors_name_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert info.value.key == key, str(info.value)


def test_duplicate_route_and_missing_tls_file(tmp_path: Path) -> None:
    raw = deepcopy(MINIMAL)
    raw["route"].append(dict(raw["route"][0]))
    with pytest.raises(ConfigError, match=r"route\[1\].called_aet"):
        parse_config(raw)
    raw = _with("tls", {"cert": "missing.pem", "key": "missing.key"})
    with pytest.raises(ConfigError, match=r"tls\.cert: file not found"):
        parse_config(raw, base_dir=tmp_path)


def test_load_config_reports_toml_syntax(tmp_path: Path) -> None:
    bad = tmp_path / "gw.toml"
    bad.write_text("[[listen]\naddress = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_cli_check_and_hash(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    good = tmp_path / "gw.toml"
    good.write_text('[[listen]]\naddress = "127.0.0.1"\nport = 11112\n'
                    '[[route]]\ncalled_aet = "PACS"\nbackend_host = "127.0.0.1"\n'
                    'backend_port = 104\n[identity.m]\noperations = ["ECHO"]\n')
    assert main(["--config", str(good), "--check"]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace("104", "0"))
    assert main(["--config", str(bad), "--check"]) == 2
    assert "route[0].backend_port" in capsys.readouterr().err
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))
    assert main(["--hash-passcode", "--method", "pbkdf2_sha256"]) == 0
    hashed = capsys.readouterr().out.strip()
    assert verify_passcode(b"s3cret", hashed) and not verify_passcode(b"other", hashed)


def test_scrypt_hash_round_trip() -> None:
    hashed = hash_passcode("pw")
    assert hashed.startswith("scrypt$") and verify_passcode(b"pw", hashed)
    assert not verify_passcode(b"pw", hashed.replace("scrypt", "bcrypt"))


FULL_TOML = """
[[listen]]
address = "127.0.0.1"
port = 11112

[sources]
allow = ["127.0.0.0/8"]

[[client]]
calling_aet = "CT01"
sources = ["127.0.0.1/32"]
identity = "modality"

[[route]]
called_aet = "PACS"
backend_host = "127.0.0.1"
backend_port = 104
backend_aet = "LEGACYPACS"
user_identity = "pass"

[identity.modality]
operations = ["ECHO", "STORE"]

[identity.viewer]
operations = ["FIND", "MOVE"]
move_destinations = ["VIEWER1"]
find_max_results = 50

[limits]
idle_timeout = 120.5
busy_poll_us = 100
"""

FULL_YAML = """
listen:
  - {address: 127.0.0.1, port: 11112}
sources:
  allow: [127.0.0.0/8]
client:
  - calling_aet: CT01
    sources: [127.0.0.1/32]
    identity: modality
route:
  - called_aet: PACS
    backend_host: 127.0.0.1
    backend_port: 104
    backend_aet: LEGACYPACS
    user_identity: pass
identity:
  modality:
    operations: [ECHO, STORE]
  viewer:
    operations: [FIND, MOVE]
    move_destinations: [VIEWER1]
    find_max_results: 50
limits:
  idle_timeout: 120.5
  busy_poll_us: 100
"""


def test_yaml_and_toml_files_give_the_same_config(tmp_path: Path) -> None:
    (tmp_path / "gw.toml").write_text(FULL_TOML)
    (tmp_path / "gw.yaml").write_text(FULL_YAML)
    from_toml = load_config(tmp_path / "gw.toml")
    assert load_config(tmp_path / "gw.yaml") == from_toml
    assert from_toml.identities["viewer"].find_max_results == 50
    assert main(["--config", str(tmp_path / "gw.yaml"), "--check"]) == 0


@pytest.mark.parametrize(("text", "message"), [
    ("listen: [unclosed", "not valid YAML"),
    ("- listen", "mapping of sections"),
    (FULL_YAML.replace("calling_aet: CT01", "calling_aet: NO"),
     r"client\[0\].calling_aet: expected a non-empty string, got False \(in YAML, quote it"),
    (FULL_YAML.replace("ECHO, STORE", "ECHO, yes"), r"identity.modality.operations"),
])
def test_yaml_mistakes_get_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "gw.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


@pytest.mark.parametrize(("raw", "key"), [
    (_with("audit.include_phi", "yes"), "audit.include_phi"),
    (_with("audit.aggregate_window", 0), "audit.aggregate_window"),
    (_with("limits.max_setup_per_source", 0), "limits.max_setup_per_source"),
    (_with("limits.min_pdu_rate", -5), "limits.min_pdu_rate"),
    (_with("limits.pdu_timeout", "fast"), "limits.pdu_timeout"),
])
def test_audit_and_setup_limit_errors_name_their_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert err.value.key == key


def test_phi_is_off_and_setup_limits_are_on_by_default() -> None:
    cfg = parse_config(deepcopy(MINIMAL))
    assert cfg.audit.include_phi is False
    assert cfg.audit.aggregate_window == 60.0
    lim = cfg.limits
    assert lim.max_setup_per_source < lim.max_setup
    assert lim.pdu_timeout < lim.idle_timeout


# -- found in review: values that passed --check and then failed or never matched -------------
@pytest.mark.parametrize(("raw", "key"), [
    # TOML and YAML both have nan and inf: a rate of inf crashed --check with a traceback,
    # a pdu_timeout of nan aborted every PDU in progress
    (_with("identity.modality.rate", float("nan")), "identity.modality.rate"),
    (_with("identity.modality.rate", float("inf")), "identity.modality.rate"),
    (_with("limits.pdu_timeout", float("nan")), "limits.pdu_timeout"),
    (_with("limits.associate_timeout", float("inf")), "limits.associate_timeout"),
    (_with("audit.aggregate_window", float("nan")), "audit.aggregate_window"),
    # a syslog port out of range crashed the start with a traceback
    (_with("audit.syslog", "udp://127.0.0.1:99999999"), "audit.syslog"),
    (_with("audit.syslog", "udp://[::1:514"), "audit.syslog"),
    # AE titles are compared without their padding spaces (PS3.5 6.2): one written with them
    # in the file could never match, silently
    (_with("route.0.called_aet", "PACS "), "route[0].called_aet"),
    (_with("route.0.backend_aet", " LEGACY"), "route[0].backend_aet"),
    (_with("route.0.called_aet", "PA\tCS"), "route[0].called_aet"),
    (_with("identity.modality.move_destinations", ["VIEWER1 "]),
     "identity.modality.move_destinations[0]"),
    (_with("identity.modality.move_destinations", [""]),
     "identity.modality.move_destinations[0]"),
])
def test_values_that_can_never_work_are_refused_with_their_key(
        raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert err.value.key == key, err.value


@pytest.mark.parametrize("text", [
    "rate = nan\n", "rate = inf\n",
])
def test_cli_check_never_shows_a_traceback(tmp_path: Path, text: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gw.toml"
    path.write_text('[[listen]]\naddress = "127.0.0.1"\nport = 2762\n[[route]]\n'
                    'called_aet = "PACS"\nbackend_host = "127.0.0.1"\nbackend_port = 104\n'
                    '[identity.modality]\noperations = ["ECHO"]\n' + text)
    assert main(["--config", str(path), "--check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "identity.modality.rate" in err, err


def test_yaml_syntax_error_is_one_line(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text("listen: !!python/object/apply:os.system ['true']\n")
    assert main(["--config", str(path), "--check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not valid YAML" in err and "line 1" in err, err
