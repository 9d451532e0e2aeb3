"""Gateway configuration: a TOML or YAML file read into frozen dataclasses.

TOML (``tomllib``) is the reference format; a file ending in ``.yaml``/``.yml`` is read with
PyYAML's safe loader into the same structure (tables become mappings, ``[[route]]`` a list
named ``route``), then validated by the same code, so both formats accept and refuse exactly
the same things. YAML 1.1 turns bare ``NO``, ``ON`` or ``1e3`` into booleans and numbers: an AE
title like that must be quoted, and the validation says so rather than guessing.

Every value is checked when the file is loaded, and every error names the key it is about
(``route[2].backend_port: expected an integer 1..65535, got 'x'``): an operator who edits the
file at 3 a.m. and sends SIGHUP must learn what is wrong before the gateway runs on it. A bad
file on reload keeps the old configuration running.

Example::

    [[listen]]
    address = "127.0.0.1"
    port = 11112

    [[listen]]
    address = "127.0.0.1"
    port = 2762
    tls = true

    [tls]
    cert = "gw.pem"
    key = "gw-key.pem"
    client_ca = "ca.pem"            # verify client certificates against this CA
    require_client_cert = false
    profile = "bcp195"              # PS3.15 Annex B: bcp195, bcp195-rfc8996,
                                    # bcp195-non-downgrading, bcp195-extended (these two need
                                    # an RSA key), aes (retired B.3, for old devices)
    dh_params = "dh.pem"            # optional, for the DHE suites (default RFC 7919 ffdhe2048)

    [sources]
    allow = ["127.0.0.0/8"]

    [[client]]                      # calling AE allow-list bound to source addresses
    calling_aet = "CT01"
    sources = ["127.0.0.1/32"]
    identity = "modality"

    [[route]]
    called_aet = "PACS"             # what clients call
    backend_host = "127.0.0.1"
    backend_port = 104
    backend_aet = "LEGACYPACS"      # called AE sent to the backend
    calling_aet = ""                # rewrite of the calling AE ("" = keep the client's)
    user_identity = "strip"         # or "pass"

    [auth]
    require_tls = true              # user identity only inside TLS
    required = false                # every association must carry a user identity

    [[user]]
    name = "alice"
    passcode_hash = "scrypt$16384$8$1$<salt hex>$<hash hex>"
    identity = "viewer"

    [jwt]
    algorithms = ["HS256"]
    secret = "..."                  # or public_key_file = "issuer.pem" for RS256
    audience = "dicomguard"
    issuer = "https://idp.example"
    identity_claim = "role"

    [identity.modality]
    operations = ["ECHO", "STORE"]
    rate = 50.0                     # operations per second (token bucket), 0 = unlimited
    burst = 100

    [identity.viewer]
    operations = ["ECHO", "FIND", "MOVE"]
    move_destinations = ["VIEWER1"]
    find_max_results = 100

    [audit]
    file = "/var/log/dicomguard/audit.xml"
    syslog = "udp://127.0.0.1:514"
    include_phi = false             # true: patient ID/name, study UIDs and query keys in the
                                    # audit trail, as full PS3.15 A.5.3 conformance needs; the
                                    # trail then holds PHI and must be protected like the archive
    aggregate_window = 60.0         # repeated refusals per source: one message per window

    [metrics]
    address = "127.0.0.1"
    port = 9464

    [limits]                        # all optional; defaults in Limits below
    associate_timeout = 10.0        # accept -> A-ASSOCIATE-RQ judged, TLS handshake included
    max_setup = 128                 # connections in association setup at once
    max_setup_per_source = 16       # ... from one source address
    max_associations = 64           # admitted associations
    max_associations_per_source = 32  # ... from one source address
    max_identity_failures_per_source = 5  # failed user identities from one source per
    identity_failure_window = 60.0  # ... this many seconds; then refused unhashed (2,3,2)
    idle_timeout = 600.0            # silence between PDUs
    pdu_timeout = 30.0              # a PDU must complete within pdu_timeout
    min_pdu_rate = 16384            #   + its length / min_pdu_rate seconds
    max_pdu_bytes = 4194304
    busy_poll_us = 0                # > 0: spin this long before sleeping (busypoll.py)

The same in YAML (``gateway.yaml``)::

    listen:
      - {address: 127.0.0.1, port: 11112}
    route:
      - {called_aet: PACS, backend_host: 127.0.0.1, backend_port: 104, backend_aet: LEGACYPACS}
    identity:
      modality: {operations: [ECHO, STORE]}
"""

from __future__ import annotations

import ipaddress
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: PS3.15 Annex B TLS profiles ``tls.profile`` can name (what each sets: gateway/tls.py)
TLS_PROFILES = ("bcp195", "bcp195-rfc8996", "bcp195-non-downgrading", "bcp195-extended", "aes")

#: Operation names a policy can allow (the DIMSE-C services the gateway inspects).
OPERATIONS = ("ECHO", "STORE", "FIND", "MOVE", "GET")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(ValueError):
    """A configuration value is missing or wrong; ``key`` is its dotted path in the file."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class Listener:
    address: str
    port: int
    tls: bool = False


@dataclass(frozen=True)
class TlsConfig:
    cert: Path
    key: Path
    client_ca: Path | None = None
    require_client_cert: bool = False
    min_version: str = "TLSv1.2"
    #: PS3.15 Annex B profile (gateway/tls.py: bcp195, bcp195-rfc8996,
    #: bcp195-non-downgrading, bcp195-extended, aes)
    profile: str = "bcp195"
    #: Diffie-Hellman parameters (PEM) for the DHE suites; None = RFC 7919 ffdhe2048
    dh_params: Path | None = None


@dataclass(frozen=True)
class Client:
    """A known calling AE and the source networks it may come from."""

    calling_aet: str
    sources: tuple[Network, ...]
    identity: str | None = None


@dataclass(frozen=True)
class Route:
    """Where an association for ``called_aet`` goes, and how its AE titles are rewritten."""

    called_aet: str
    backend_host: str
    backend_port: int
    backend_aet: str
    calling_aet: str = ""
    user_identity: str = "strip"


@dataclass(frozen=True)
class User:
    name: str
    passcode_hash: str
    identity: str


@dataclass(frozen=True)
class JwtConfig:
    algorithms: tuple[str, ...]
    secret: str | None = None
    public_key_file: Path | None = None
    audience: str | None = None
    issuer: str | None = None
    identity_claim: str = "sub"
    leeway: float = 0.0
    require_jti: bool = True


@dataclass(frozen=True)
class CertIdentity:
    """A TLS client certificate subject common name mapped to an identity."""

    common_name: str
    identity: str


@dataclass(frozen=True)
class IdentityPolicy:
    """What one identity may do once its association is up."""

    name: str
    operations: frozenset[str]
    move_destinations: frozenset[str] | None = None  # None = any destination
    find_max_results: int = 0  # 0 = no cap
    rate: float = 0.0  # operations per second; 0 = unlimited
    burst: int = 0


@dataclass(frozen=True)
class AuthConfig:
    require_tls: bool = False
    required: bool = False
    accept_username_only: bool = False
    default_identity: str | None = None


@dataclass(frozen=True)
class AuditConfig:
    file: Path | None = None
    syslog: str | None = None  # "udp://host:port" or "tcp://host:port"
    source_id: str = "dicomguard-gateway"
    #: write patient data (query keys, patient ID and name, study UIDs) into audit messages,
    #: as full PS3.15 conformance asks; off: the SOP class is named instead (gateway/audit.py)
    include_phi: bool = False
    #: seconds over which repeated refusals from one source are folded into one message
    aggregate_window: float = 60.0


@dataclass(frozen=True)
class MetricsConfig:
    address: str = "127.0.0.1"
    port: int = 0  # 0 = no metrics endpoint


@dataclass(frozen=True)
class Limits:
    """Time limits (seconds), counts and sizes (bytes); every value must be positive.

    Association setup (PS3.8 ARTIM): a connection is *in setup* from accept until its
    A-ASSOCIATE-RQ has been read whole and judged, TLS handshake included. It must finish
    within ``associate_timeout`` seconds in total (not per read: a peer trickling bytes gets no
    more time). At most ``max_setup`` connections are in setup at once, and at most
    ``max_setup_per_source`` from one source address (a connection beyond that is closed at
    once, before a byte is read); when ``max_setup`` is reached, the oldest connection of the
    source holding the most connections in setup is closed to make room, so half-open
    connections cannot lock legitimate clients out. ``max_associations`` counts admitted
    associations only, ``max_associations_per_source`` those from one source address (so that
    one admitted peer holding associations open cannot take them all).

    User identities (passcodes: ~45-70 ms of scrypt each) are checked on one worker thread,
    taking the waiting sources in turn, known good ones first and suspect ones last
    (gateway/identity_queue.py), so a client waits for at most one check per other source of
    its standing or better with checks waiting. A source may fail
    ``max_identity_failures_per_source`` checks per ``identity_failure_window`` seconds (a
    token bucket); past that its requests with a user identity are refused with
    A-ASSOCIATE-RJ (2, 3, 2) transient, local limit exceeded, without hashing.

    Data phase: a PDU must complete within ``pdu_timeout + length / min_pdu_rate`` seconds of
    its first byte (``length`` as announced in its header), whatever arrives in between;
    ``idle_timeout`` bounds the silence between PDUs.
    """

    associate_timeout: float = 10.0
    idle_timeout: float = 600.0
    connect_timeout: float = 5.0
    max_associations: int = 64
    max_associations_per_source: int = 32
    max_setup: int = 128
    #: per source: room for a burst of TLS handshakes from many clients behind one NAT
    max_setup_per_source: int = 16
    max_identity_failures_per_source: int = 5
    identity_failure_window: float = 60.0
    pdu_timeout: float = 30.0
    #: bytes per second a PDU must at least arrive at (16 KiB/s: a 4 MiB PDU gets 286 s)
    min_pdu_rate: int = 16 << 10
    max_pdu_bytes: int = 4 << 20
    max_command_bytes: int = 16 << 10
    max_command_fragments: int = 4
    stop_grace: float = 10.0
    #: spin this long before sleeping when traffic flows (gateway/busypoll.py); 0 = off
    busy_poll_us: int = 0


@dataclass(frozen=True)
class GatewayConfig:
    listeners: tuple[Listener, ...]
    routes: tuple[Route, ...]
    identities: dict[str, IdentityPolicy]
    sources: tuple[Network, ...] = ()
    clients: tuple[Client, ...] = ()
    users: tuple[User, ...] = ()
    cert_identities: tuple[CertIdentity, ...] = ()
    tls: TlsConfig | None = None
    jwt: JwtConfig | None = None
    auth: AuthConfig = field(default_factory=AuthConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    limits: Limits = field(default_factory=Limits)
    base_dir: Path = Path(".")

    def route_for(self, called_aet: str) -> Route | None:
        for route in self.routes:
            if route.called_aet == called_aet:
                return route
        return None


# --- loading ---------------------------------------------------------------------------------


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate a TOML or YAML file (by its suffix); relative file names are taken from
    the file's folder."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), f"cannot read: {exc}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        raw = _load_yaml(text, path)
    else:
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    return parse_config(raw, base_dir=path.parent)


def _load_yaml(text: str, path: Path) -> dict[str, Any]:
    import yaml  # only YAML users pay for the import

    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # PyYAML's message spans lines (with a caret under the column): one line here
        raise ConfigError(str(path), f"not valid YAML: {' '.join(str(exc).split())}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(str(path), "expected a mapping of sections at the top level")
    return raw


def parse_config(raw: dict[str, Any], *, base_dir: Path = Path(".")) -> GatewayConfig:
    """Validate an already-parsed TOML document (tests build these as dicts)."""
    _known(raw, "", {
        "listen", "tls", "sources", "client", "route", "auth", "user", "jwt", "cert_identity",
        "identity", "audit", "metrics", "limits",
    })
    listeners = tuple(_listener(item, f"listen[{i}]") for i, item in enumerate(
        _table_list(raw, "listen", required=True)))
    tls = _tls(raw["tls"], base_dir) if "tls" in raw else None
    if tls is None and any(lst.tls for lst in listeners):
        raise ConfigError("tls", "a listener has tls = true but there is no [tls] section")
    sources_tab = _table(raw, "sources")
    _known(sources_tab, "sources", {"allow"})
    sources = tuple(
        _network(v, f"sources.allow[{i}]")
        for i, v in enumerate(_str_list(sources_tab, "allow", "sources"))
    )
    identities = {
        name: _identity(name, tab, f"identity.{name}")
        for name, tab in _table(raw, "identity").items()
    }
    if not identities:
        raise ConfigError("identity", "define at least one [identity.NAME] table")

    def known_identity(value: str, key: str) -> str:
        if value not in identities:
            raise ConfigError(key, f"unknown identity {value!r} (defined: {sorted(identities)})")
        return value

    clients = []
    for i, item in enumerate(_table_list(raw, "client")):
        key = f"client[{i}]"
        _known(item, key, {"calling_aet", "sources", "identity"})
        ident = _opt_str(item, "identity", key)
        clients.append(Client(
            calling_aet=_aet(item, "calling_aet", key),
            sources=tuple(_network(v, f"{key}.sources[{j}]")
                          for j, v in enumerate(_str_list(item, "sources", key, required=True))),
            identity=known_identity(ident, f"{key}.identity") if ident else None,
        ))
    routes = tuple(_route(item, f"route[{i}]") for i, item in enumerate(
        _table_list(raw, "route", required=True)))
    seen: set[str] = set()
    for i, r in enumerate(routes):
        if r.called_aet in seen:
            raise ConfigError(f"route[{i}].called_aet", f"{r.called_aet!r} routed twice")
        seen.add(r.called_aet)
    users = []
    for i, item in enumerate(_table_list(raw, "user")):
        key = f"user[{i}]"
        _known(item, key, {"name", "passcode_hash", "identity"})
        hashed = _str(item, "passcode_hash", key)
        if hashed.split("$", 1)[0] not in ("scrypt", "pbkdf2_sha256"):
            raise ConfigError(f"{key}.passcode_hash",
                              "expected 'scrypt$...' or 'pbkdf2_sha256$...' "
                              "(make one with: dicomguard gateway --hash-passcode)")
        users.append(User(_str(item, "name", key), hashed,
                          known_identity(_str(item, "identity", key), f"{key}.identity")))
    certs = []
    for i, item in enumerate(_table_list(raw, "cert_identity")):
        key = f"cert_identity[{i}]"
        _known(item, key, {"common_name", "identity"})
        certs.append(CertIdentity(_str(item, "common_name", key),
                                  known_identity(_str(item, "identity", key), f"{key}.identity")))
    if certs and (tls is None or tls.client_ca is None):
        raise ConfigError("cert_identity", "needs [tls] client_ca to verify client certificates")
    jwt = _jwt(raw["jwt"], base_dir) if "jwt" in raw else None
    auth_tab = _table(raw, "auth")
    _known(auth_tab, "auth", {"require_tls", "required", "accept_username_only",
                              "default_identity"})
    default_identity = _opt_str(auth_tab, "default_identity", "auth")
    auth = AuthConfig(
        require_tls=_bool(auth_tab, "require_tls", "auth", False),
        required=_bool(auth_tab, "required", "auth", False),
        accept_username_only=_bool(auth_tab, "accept_username_only", "auth", False),
        default_identity=known_identity(default_identity, "auth.default_identity")
        if default_identity else None,
    )
    return GatewayConfig(
        listeners=listeners,
        routes=routes,
        identities=identities,
        sources=sources,
        clients=tuple(clients),
        users=tuple(users),
        cert_identities=tuple(certs),
        tls=tls,
        jwt=jwt,
        auth=auth,
        audit=_audit(_table(raw, "audit"), base_dir),
        metrics=_metrics(_table(raw, "metrics")),
        limits=_limits(_table(raw, "limits")),
        base_dir=base_dir,
    )


def _listener(item: dict[str, Any], key: str) -> Listener:
    _known(item, key, {"address", "port", "tls"})
    # port 0 = any free port (tests; the bound port is logged at start)
    return Listener(_ip(item, "address", key), _port(item, "port", key, allow_zero=True),
                    _bool(item, "tls", key, False))


def _tls(item: Any, base_dir: Path) -> TlsConfig:
    key = "tls"
    if not isinstance(item, dict):
        raise ConfigError(key, "expected a table")
    _known(item, key, {"cert", "key", "client_ca", "require_client_cert", "min_version",
                       "profile", "dh_params"})
    ca = _opt_str(item, "client_ca", key)
    require = _bool(item, "require_client_cert", key, False)
    if require and not ca:
        raise ConfigError("tls.require_client_cert", "needs tls.client_ca")
    version = _opt_str(item, "min_version", key) or "TLSv1.2"
    if version not in ("TLSv1.2", "TLSv1.3"):
        raise ConfigError("tls.min_version", f"expected 'TLSv1.2' or 'TLSv1.3', got {version!r}")
    profile = _opt_str(item, "profile", key) or "bcp195"
    if profile not in TLS_PROFILES:
        hint = (" (PS3.15 B.1 Basic TLS is retired and uses 3DES, which BCP 195 forbids)"
                if profile == "basic" else "")
        raise ConfigError("tls.profile", f"expected one of {', '.join(TLS_PROFILES)}, "
                          f"got {profile!r}{hint}")
    dh = _opt_str(item, "dh_params", key)
    return TlsConfig(
        profile=profile,
        dh_params=_file(base_dir, dh, "tls.dh_params") if dh else None,
        cert=_file(base_dir, _str(item, "cert", key), "tls.cert"),
        key=_file(base_dir, _str(item, "key", key), "tls.key"),
        client_ca=_file(base_dir, ca, "tls.client_ca") if ca else None,
        require_client_cert=require,
        min_version=version,
    )


def _route(item: dict[str, Any], key: str) -> Route:
    _known(item, key, {"called_aet", "backend_host", "backend_port", "backend_aet",
                       "calling_aet", "user_identity"})
    mode = _opt_str(item, "user_identity", key) or "strip"
    if mode not in ("strip", "pass"):
        raise ConfigError(f"{key}.user_identity", f"expected 'strip' or 'pass', got {mode!r}")
    called = _aet(item, "called_aet", key)
    calling = _opt_str(item, "calling_aet", key) or ""
    if calling:
        _check_aet(calling, f"{key}.calling_aet")
    backend_aet = _opt_str(item, "backend_aet", key) or called
    _check_aet(backend_aet, f"{key}.backend_aet")
    return Route(
        called_aet=called,
        backend_host=_str(item, "backend_host", key),
        backend_port=_port(item, "backend_port", key),
        backend_aet=backend_aet,
        calling_aet=calling,
        user_identity=mode,
    )


def _identity(name: str, item: Any, key: str) -> IdentityPolicy:
    if not isinstance(item, dict):
        raise ConfigError(key, "expected a table")
    _known(item, key, {"operations", "move_destinations", "find_max_results", "rate", "burst"})
    ops = _str_list(item, "operations", key, required=True)
    for i, op in enumerate(ops):
        if op not in OPERATIONS:
            raise ConfigError(f"{key}.operations[{i}]",
                              f"unknown operation {op!r} (known: {', '.join(OPERATIONS)})")
    dests = item.get("move_destinations")
    for i, dest in enumerate(_str_list(item, "move_destinations", key)):
        _check_aet(dest, f"{key}.move_destinations[{i}]")
    rate = _number(item, "rate", key, 0.0)
    burst = _int(item, "burst", key, 0)
    if rate < 0 or burst < 0:
        raise ConfigError(f"{key}.rate", "rate and burst must not be negative")
    return IdentityPolicy(
        name=name,
        operations=frozenset(ops),
        move_destinations=None if dests is None else frozenset(
            _str_list(item, "move_destinations", key)),
        find_max_results=_int(item, "find_max_results", key, 0),
        rate=rate,
        burst=burst if burst else max(1, int(rate)) if rate else 0,
    )


def _jwt(item: Any, base_dir: Path) -> JwtConfig:
    key = "jwt"
    if not isinstance(item, dict):
        raise ConfigError(key, "expected a table")
    _known(item, key, {"algorithms", "secret", "public_key_file", "audience", "issuer",
                       "identity_claim", "leeway", "require_jti"})
    algorithms = tuple(_str_list(item, "algorithms", key, required=True))
    for i, alg in enumerate(algorithms):
        if alg not in ("HS256", "RS256"):
            raise ConfigError(f"jwt.algorithms[{i}]", f"expected HS256 or RS256, got {alg!r}")
    secret = _opt_str(item, "secret", key)
    pub = _opt_str(item, "public_key_file", key)
    if "HS256" in algorithms and not secret:
        raise ConfigError("jwt.secret", "HS256 needs a secret")
    if "RS256" in algorithms and not pub:
        raise ConfigError("jwt.public_key_file", "RS256 needs a public key file")
    if secret is not None and len(secret) < 32:
        raise ConfigError("jwt.secret", "use at least 32 characters for an HS256 secret")
    return JwtConfig(
        algorithms=algorithms,
        secret=secret,
        public_key_file=_file(base_dir, pub, "jwt.public_key_file") if pub else None,
        audience=_opt_str(item, "audience", key),
        issuer=_opt_str(item, "issuer", key),
        identity_claim=_opt_str(item, "identity_claim", key) or "sub",
        leeway=_number(item, "leeway", key, 0.0),
        require_jti=_bool(item, "require_jti", key, True),
    )


def _audit(item: dict[str, Any], base_dir: Path) -> AuditConfig:
    _known(item, "audit", {"file", "syslog", "source_id", "include_phi", "aggregate_window"})
    window = _number(item, "aggregate_window", "audit", 60.0)
    if window <= 0:
        raise ConfigError("audit.aggregate_window", "must be positive")
    file = _opt_str(item, "file", "audit")
    syslog = _opt_str(item, "syslog", "audit")
    if syslog is not None:
        parse_syslog_url(syslog, "audit.syslog")
    return AuditConfig(
        file=(base_dir / file) if file else None,
        syslog=syslog,
        source_id=_opt_str(item, "source_id", "audit") or "dicomguard-gateway",
        include_phi=_bool(item, "include_phi", "audit", False),
        aggregate_window=window,
    )


def parse_syslog_url(url: str, key: str = "audit.syslog") -> tuple[str, str, int]:
    """``udp://host:port`` → ("udp", host, port)."""
    scheme, sep, rest = url.partition("://")
    host, _, port = rest.rpartition(":")
    bracketed = host.startswith("[") or host.endswith("]")
    if bracketed:  # an IPv6 address: [::1]:514
        if not (host.startswith("[") and host.endswith("]")) or "[" in host[1:-1]:
            host = ""
        host = host[1:-1]
    if (not sep or scheme not in ("udp", "tcp") or not host or not port.isdigit()
            or not 1 <= int(port) <= 65535):
        raise ConfigError(key, f"expected 'udp://HOST:PORT' or 'tcp://HOST:PORT' (port "
                          f"1..65535, IPv6 in brackets), got {url!r}")
    return scheme, host, int(port)


def _metrics(item: dict[str, Any]) -> MetricsConfig:
    _known(item, "metrics", {"address", "port"})
    if not item:
        return MetricsConfig()
    return MetricsConfig(
        address=_ip(item, "address", "metrics") if "address" in item else "127.0.0.1",
        port=_port(item, "port", "metrics", allow_zero=True),
    )


def _limits(item: dict[str, Any]) -> Limits:
    defaults = Limits()
    _known(item, "limits", set(Limits.__dataclass_fields__))
    values: dict[str, Any] = {}
    for name in Limits.__dataclass_fields__:
        if name not in item:
            continue
        default = getattr(defaults, name)
        if isinstance(default, int):
            values[name] = _int(item, name, "limits", default)
        else:
            values[name] = _number(item, name, "limits", default)
        if name == "busy_poll_us":
            if not 0 <= values[name] <= 10_000:
                raise ConfigError("limits.busy_poll_us", "must be between 0 and 10000")
        elif values[name] <= 0:
            raise ConfigError(f"limits.{name}", "must be positive")
    return Limits(**values)


# --- small typed getters: each names the key it complains about -----------------------------


def _known(item: dict[str, Any], key: str, allowed: set[str]) -> None:
    for name in item:
        if name not in allowed:
            where = f"{key}.{name}" if key else name
            raise ConfigError(where, f"unknown key (expected one of: {', '.join(sorted(allowed))})")


def _table(raw: dict[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(name, "expected a table ([" + name + "])")
    return value


def _table_list(raw: dict[str, Any], name: str, *, required: bool = False) -> list[dict[str, Any]]:
    value = raw.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(name, f"expected an array of tables ([[{name}]])")
    if required and not value:
        raise ConfigError(name, f"at least one [[{name}]] is required")
    return value


def _str(item: dict[str, Any], name: str, key: str) -> str:
    if name not in item:
        raise ConfigError(f"{key}.{name}", "missing")
    value = item[name]
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}.{name}",
                          f"expected a non-empty string, got {value!r}{_quote_hint(value)}")
    return value


def _quote_hint(value: object) -> str:
    """For a YAML user: ``calling_aet: NO`` arrives as False, ``port: 0104`` as a number."""
    if isinstance(value, bool | int | float):
        return " (in YAML, quote it: bare yes/no/on/off and numbers are not strings)"
    return ""


def _opt_str(item: dict[str, Any], name: str, key: str) -> str | None:
    if name not in item:
        return None
    value = item[name]
    if not isinstance(value, str):
        raise ConfigError(f"{key}.{name}", f"expected a string, got {value!r}{_quote_hint(value)}")
    return value


def _str_list(item: dict[str, Any], name: str, key: str, *, required: bool = False) -> list[str]:
    if name not in item:
        if required:
            raise ConfigError(f"{key}.{name}", "missing")
        return []
    value = item[name]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        hint = next((_quote_hint(v) for v in value if _quote_hint(v)), "") if isinstance(
            value, list) else ""
        raise ConfigError(f"{key}.{name}", f"expected a list of strings, got {value!r}{hint}")
    return value


def _bool(item: dict[str, Any], name: str, key: str, default: bool) -> bool:
    value = item.get(name, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{key}.{name}", f"expected true or false, got {value!r}")
    return value


def _int(item: dict[str, Any], name: str, key: str, default: int) -> int:
    value = item.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{key}.{name}", f"expected a non-negative integer, got {value!r}")
    return value


def _number(item: dict[str, Any], name: str, key: str, default: float) -> float:
    value = item.get(name, default)
    # TOML and YAML both spell nan and inf: no timeout, rate or window means either
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{key}.{name}", f"expected a finite number, got {value!r}")
    return float(value)


def _port(item: dict[str, Any], name: str, key: str, *, allow_zero: bool = False) -> int:
    value = item.get(name)
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 65535:
        raise ConfigError(f"{key}.{name}", f"expected an integer {low}..65535, got {value!r}")
    return value


def _ip(item: dict[str, Any], name: str, key: str) -> str:
    value = _str(item, name, key)
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ConfigError(f"{key}.{name}", f"expected an IP address, got {value!r}") from None
    return value


def _network(value: str, key: str) -> Network:
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ConfigError(key, f"expected an IP address or CIDR, got {value!r}") from None


def _check_aet(value: str, key: str) -> str:
    """An AE title as the gateway compares it: what a peer sends is read without its padding
    spaces (PS3.5 6.2, AE), so a title with leading or trailing spaces, control characters or
    a backslash in the file could never match."""
    if (not 1 <= len(value) <= 16 or not value.isascii() or "\\" in value
            or value != value.strip() or not value.isprintable()):
        raise ConfigError(key, f"expected an AE title of 1-16 printable ASCII characters "
                          f"without leading or trailing spaces, got {value!r}")
    return value


def _aet(item: dict[str, Any], name: str, key: str) -> str:
    return _check_aet(_str(item, name, key), f"{key}.{name}")


def _file(base_dir: Path, value: str, key: str) -> Path:
    path = base_dir / value
    if not path.is_file():
        raise ConfigError(key, f"file not found: {path}")
    return path
