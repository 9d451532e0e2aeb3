"""Addresses that are never a TCP server's (RFC 6890) are never probed.

Found by a fresh tester: ``dicomguard scan 127.0.0.1/0`` (a typo for /8) started connecting
to 0.0.0.0/8 ("this host on this network", never a destination; Linux even delivers
connects to 0.0.0.0 to the local machine), and a range over 224.0.0.0/4 (multicast) or
240.0.0.0/4 (reserved, broadcast) would be probed too. zmap's and masscan's default
blocklists leave these out; so does dicomguard, and it says how many it left out. Nothing
connects here.
"""

from __future__ import annotations

from dicomguard.scan.targets import build_targets


def test_zero_network_multicast_and_reserved_are_left_out_and_counted() -> None:
    ts = build_targets(
        ["0.0.0.0/30", "223.255.255.254-255", "224.0.0.1", "255.255.255.255"], ports=[104]
    )
    assert [h for h, _p in ts] == ["223.255.255.254", "223.255.255.255"]
    assert ts.never_servers == 4 + 1 + 1


def test_the_whole_ipv4_space_skips_them() -> None:
    ts = build_targets(["127.0.0.1/0"], ports=[104])
    assert ts.count() == 2**32 - 2**24 - 2**29
    assert ts.never_servers == 2**24 + 2**29
    first = next(iter(ts))
    assert first == ("1.0.0.0", 104)


def test_loopback_and_private_ranges_are_untouched() -> None:
    ts = build_targets(["127.0.0.0/30", "10.0.0.0/31"], ports=[104])
    assert ts.count() == 6 and ts.never_servers == 0


def test_the_scan_says_how_many_it_left_out(tmp_path, capsys) -> None:
    """Only never-server addresses: the count line, then 'no targets' or an empty scan, with
    no connection attempted (nothing else is in the set)."""
    from dicomguard.cli import main

    try:
        code = main(
            [
                "scan",
                "0.0.0.1",
                "224.0.0.1",
                "--db",
                str(tmp_path / "x.db"),
                "--no-progress",
                "-p",
                "1",
            ]
        )
    except SystemExit as exc:
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert "2 address(es) left out: never a server's" in err
    assert "Traceback" not in err and code in (0, 2)


def test_only_never_server_addresses_exit_2_with_one_line(tmp_path, capsys) -> None:
    """Targets that are all never-server addresses (here from an -iL file, host:port lines)
    are a usage error: exit 2 and one clear line, never an empty scan with exit 0."""
    from dicomguard.cli import main

    targets = tmp_path / "t.txt"
    targets.write_text("0.0.0.1:104\n224.0.0.1:104\n240.0.0.9\n")
    try:
        code = main(["scan", "-iL", str(targets), "--db", str(tmp_path / "x.db"), "--no-progress"])
    except SystemExit as exc:
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2
    assert "no targets left: all 3 address(es) asked for are never a server's" in err
    assert "Traceback" not in err
    assert not (tmp_path / "x.db").exists()
