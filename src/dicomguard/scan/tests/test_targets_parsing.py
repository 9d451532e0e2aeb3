"""Target specs and port lists: what parses, to what, and how bad input is reported.

Only loopback and documentation addresses appear here, and nothing connects anywhere.
"""

from __future__ import annotations

import pytest

from dicomguard.scan.targets import (
    DEFAULT_PORTS,
    TargetError,
    build_targets,
    parse_ports,
)


def hosts(*specs: str) -> list[str]:
    """The distinct hosts of ``specs``, in iteration order (one port keeps it simple)."""
    return [h for h, _ in build_targets(specs, ports=(104,)).iter_endpoints()]


def test_single_ipv4_and_ipv6_addresses() -> None:
    assert hosts("127.0.0.1") == ["127.0.0.1"]
    assert hosts("::1") == ["::1"]
    assert hosts("[::1]") == ["::1"]
    assert hosts("2001:db8:0:0::7") == ["2001:db8::7"]


def test_cidr_with_host_bits_set_is_normalised_like_nmap() -> None:
    assert hosts("127.0.0.77/30") == ["127.0.0.76", "127.0.0.77", "127.0.0.78", "127.0.0.79"]


def test_ipv6_cidr() -> None:
    assert hosts("2001:db8::5/126") == ["2001:db8::4", "2001:db8::5", "2001:db8::6", "2001:db8::7"]


def test_slash32_and_slash0_edges() -> None:
    assert hosts("192.0.2.9/32") == ["192.0.2.9"]
    # 0.0.0.0/8, multicast and reserved space are never a server's: left out, counted
    whole = build_targets(["0.0.0.0/0"], ports=(104,))
    assert whole.count() + whole.never_servers == 2**32


def test_last_octet_range() -> None:
    got = hosts("127.0.0.1-50")
    assert len(got) == 50
    assert got[0] == "127.0.0.1" and got[-1] == "127.0.0.50"


def test_range_across_several_octets() -> None:
    got = hosts("127.42.0-3.1-254")
    assert len(got) == 4 * 254
    assert got[:2] == ["127.42.0.1", "127.42.0.2"]
    assert got[253:255] == ["127.42.0.254", "127.42.1.1"]
    assert got[-1] == "127.42.3.254"


def test_octet_lists_open_ranges_and_star() -> None:
    assert hosts("127.0.0.1,3,5-6") == ["127.0.0.1", "127.0.0.3", "127.0.0.5", "127.0.0.6"]
    assert len(hosts("127.0.0.*")) == 256
    assert hosts("127.0.0.-2") == ["127.0.0.0", "127.0.0.1", "127.0.0.2"]
    assert hosts("127.0.0.254-") == ["127.0.0.254", "127.0.0.255"]
    assert hosts("127.0,2.0.1") == ["127.0.0.1", "127.2.0.1"]


def test_whitespace_and_commas_separate_specs() -> None:
    assert hosts("127.0.0.1,127.0.0.2 ::1") == ["127.0.0.1", "127.0.0.2", "::1"]


def test_hostnames_are_kept_unresolved_and_make_count_unknown() -> None:
    targets = build_targets(["dicom-1.example.invalid", "127.0.0.1"], ports=(104, 11112))
    assert targets.count() is None
    assert list(targets.iter_endpoints()) == [
        ("dicom-1.example.invalid", 104),
        ("dicom-1.example.invalid", 11112),
        ("127.0.0.1", 104),
        ("127.0.0.1", 11112),
    ]


def test_duplicate_and_overlapping_specs_are_scanned_once() -> None:
    targets = build_targets(
        ["127.0.0.1-10", "127.0.0.5", "127.0.0.0/29", "LOCALHOST", "localhost."], ports=(104,)
    )
    got = list(targets.iter_endpoints())
    assert len(got) == len(set(got)) == 11 + 1
    assert [h for h, _ in got[:11]] == [f"127.0.0.{i}" for i in range(11)]


def test_empty_target_list_is_an_empty_set() -> None:
    targets = build_targets([])
    assert targets.count() == 0
    assert list(targets.iter_endpoints()) == []


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("127.0.0.300", "octet out of range"),
        ("127.0.0", "expected 4 dot-separated octets"),
        ("127.0.0.1.5", "expected 4 dot-separated octets"),
        ("127.0.0.50-1", "runs backwards"),
        ("127.0.0.01", "leading zero"),
        ("127.0..1", "empty octet"),
        ("127.0.0.1/33", "longer than /32"),
        ("::1/129", "longer than /128"),
        ("127.0.0.0/x", "not a number"),
        ("127.0.0.1-5/24", "ranges cannot be combined"),
        ("dicom.example.invalid/24", "needs an IP address"),
        ("2001:db8::zz", "not a valid IPv6 address"),
        ("fe80::1%lo", "scoped IPv6"),
        ("pacs.example.invalid:104", "give ports with -p"),
        ("[::1]:104", "give ports with -p"),
        ("bad_host-.example", "valid hostname"),
        ("under score!", "valid hostname"),
        ("12345", "expected 4 dot-separated octets"),
    ],
)
def test_bad_targets_name_the_spec_and_the_reason(spec: str, reason: str) -> None:
    with pytest.raises(TargetError) as info:
        build_targets([spec])
    message = str(info.value)
    assert reason in message
    assert repr(spec.split()[-1]) in message or repr(spec) in message


def test_bad_octet_message_matches_the_documented_form() -> None:
    with pytest.raises(TargetError, match=r"^bad target '127\.0\.0\.300': octet out of range$"):
        build_targets(["127.0.0.300"])


def test_target_error_is_a_value_error() -> None:
    assert issubclass(TargetError, ValueError)


def test_range_too_fragmented_is_refused_with_advice() -> None:
    with pytest.raises(TargetError, match="use a CIDR"):
        build_targets(["1-254.1-254.1-254.1-254"])


def test_default_ports() -> None:
    assert DEFAULT_PORTS == (104, 11112, 4242, 2761, 2762)
    assert build_targets(["127.0.0.1"]).count() == len(DEFAULT_PORTS)


def test_parse_ports_lists_ranges_and_tcp_prefix() -> None:
    assert parse_ports("104,11112,4242") == (104, 11112, 4242)
    assert parse_ports("100-103") == (100, 101, 102, 103)
    assert parse_ports("T:104,T:11112") == (104, 11112)
    assert parse_ports(" 104 , 104,105-106 ") == (104, 105, 106)
    assert parse_ports("-3") == (1, 2, 3)
    assert parse_ports("65534-") == (65534, 65535)
    assert len(parse_ports("-")) == 65535


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no ports"),
        ("0", "outside 1-65535"),
        ("65536", "outside 1-65535"),
        ("110-100", "greater than its end"),
        ("U:53", "only TCP"),
        ("dicom", "expected a number"),
        ("1-2-3", "expected a number"),
    ],
)
def test_parse_ports_rejects_bad_values_clearly(text: str, reason: str) -> None:
    with pytest.raises(TargetError, match=reason):
        parse_ports(text)


def test_build_targets_validates_the_port_sequence() -> None:
    with pytest.raises(TargetError, match="1-65535"):
        build_targets(["127.0.0.1"], ports=(104, 70000))
    with pytest.raises(TargetError, match="no ports"):
        build_targets(["127.0.0.1"], ports=())
