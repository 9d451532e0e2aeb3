"""A damaged MaxMind DB (intact metadata, corrupt search tree) is refused when opened, in one
line, not at the first lookup in the middle of a scan or report. Found by a fresh tester:
the file passed the --geoip check and every lookup raised maxminddb's InvalidDatabaseError.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from dicomguard.geoip import GeoIP, GeoIPError


def test_a_corrupt_search_tree_is_refused_when_opened(tmp_path: Path) -> None:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-Country")
    writer.insert_network(IPSet(["127.0.0.0/25"]), {"country": {"iso_code": "XA"}})
    good = tmp_path / "good.mmdb"
    writer.to_db_file(str(good))
    data = bytearray(good.read_bytes())
    tree_end = data.rfind(b"\xab\xcd\xefMaxMind.com")
    rng = random.Random(1)
    for i in range(0, tree_end, 2):
        data[i] = rng.randrange(256)
    bad = tmp_path / "bad.mmdb"
    bad.write_bytes(bytes(data))
    with pytest.raises(GeoIPError, match=r"--geoip .*bad\.mmdb: damaged MaxMind DB file"):
        GeoIP([bad])
    with GeoIP([good]) as geo:  # an intact one still opens and answers
        assert geo.lookup("127.0.0.1")["country"] == "XA"
