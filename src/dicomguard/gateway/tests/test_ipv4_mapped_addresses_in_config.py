"""IPv4-mapped IPv6 addresses (``::ffff:127.0.0.5``) in the configuration are refused with the
IPv4 form to write instead: the gateway's IPv6 listeners are IPv6 only (asyncio sets
IPV6_V6ONLY; measured: a listener on ``::`` refuses 127.0.0.1), so no peer ever arrives with
such an address and no listener binds one. Found by review: ``--check`` said ok, then the
gateway failed to bind (EINVAL); in ``sources.allow`` or a client's sources the entry silently
matched nothing."""

from __future__ import annotations

from typing import Any

import pytest

from dicomguard.gateway.config import ConfigError, parse_config


@pytest.mark.parametrize(("where", "value", "key", "hint"), [
    ("listen", "::ffff:127.0.0.5", "listen[0].address", "write 127.0.0.5"),
    ("allow", "::ffff:127.0.0.0/104", "sources.allow[0]", "write 127.0.0.0/8"),
    ("allow", "::ffff:127.0.0.1", "sources.allow[0]", "write 127.0.0.1/32"),
    ("client", "::ffff:127.0.0.1/128", "client[0].sources[0]", "write 127.0.0.1/32"),
])
def test_an_ipv4_mapped_address_is_refused_with_its_ipv4_form(
    raw_config: dict[str, Any], where: str, value: str, key: str, hint: str
) -> None:
    if where == "listen":
        raw_config["listen"] = [{"address": value, "port": 0}]
    elif where == "allow":
        raw_config["sources"] = {"allow": [value]}
    else:
        raw_config["client"][0]["sources"] = [value]
    with pytest.raises(ConfigError) as caught:
        parse_config(raw_config)
    assert caught.value.key == key
    assert hint in str(caught.value) and "IPv4-mapped" in str(caught.value)


def test_plain_ipv6_addresses_and_networks_are_accepted(
    raw_config: dict[str, Any]
) -> None:
    raw_config["sources"] = {"allow": ["::/0", "::1/128", "127.0.0.0/8"]}
    raw_config["listen"] = [{"address": "::1", "port": 0}]
    assert len(parse_config(raw_config).sources) == 3
