"""-iL files as spreadsheets and Windows tools write them: BOM, CRLF, UTF-16, TSV, ';' CSV,
cells bigger than the csv module's default field limit. Found by a fresh tester: a BOM before
a header-less ``ip,port`` file silently dropped its first endpoint, a 200 KB banner cell in a
Censys CSV export ended the scan with a traceback. Nothing connects here.
"""

from __future__ import annotations

from pathlib import Path

from dicomguard.scan.targets import TargetError, read_input_file


def pairs(path: Path) -> list[tuple[str, tuple[int, ...] | None]]:
    return [(t.spec, t.ports) for t in read_input_file(path)]


def test_bom_before_a_headerless_ip_port_csv_keeps_the_first_endpoint(tmp_path: Path) -> None:
    path = tmp_path / "hits.csv"
    path.write_bytes("\ufeff127.0.0.1,104\r\n127.0.0.2,104\r\n".encode())
    assert pairs(path) == [("127.0.0.1", (104,)), ("127.0.0.2", (104,))]


def test_bom_before_a_plain_list_and_host_port_lines(tmp_path: Path) -> None:
    plain = tmp_path / "list.txt"
    plain.write_bytes("\ufeff127.0.0.1\r\n127.0.0.2\r\n".encode())
    assert pairs(plain) == [("127.0.0.1", None), ("127.0.0.2", None)]
    hp = tmp_path / "hp.txt"
    hp.write_bytes("\ufeff127.0.0.1:104\r\n".encode())
    assert pairs(hp) == [("127.0.0.1", (104,))]


def test_utf16_export_with_bom_is_read(tmp_path: Path) -> None:
    """PowerShell's Out-File / Excel 'Unicode text' write UTF-16 with a byte order mark."""
    path = tmp_path / "hits.csv"
    path.write_bytes("ip,port\r\n127.0.0.1,104\r\n".encode("utf-16"))
    assert pairs(path) == [("127.0.0.1", (104,))]


def test_tab_and_semicolon_separated_exports_with_a_header(tmp_path: Path) -> None:
    tsv = tmp_path / "hits.tsv"
    tsv.write_text("ip\tport\n127.0.0.1\t104\n")
    assert pairs(tsv) == [("127.0.0.1", (104,))]
    semi = tmp_path / "hits.csv"
    semi.write_text("ip;port\n127.0.0.1;104\n")
    assert pairs(semi) == [("127.0.0.1", (104,))]


def test_a_huge_banner_cell_is_read_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "censys.csv"
    path.write_text("ip,services.port,banner\n127.0.0.1,104," + "A" * 200_000 + "\n")
    assert pairs(path) == [("127.0.0.1", (104,))]


def test_a_csv_the_csv_module_cannot_read_is_one_target_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text('ip,port\n127.0.0.1,"104\n')  # unterminated quote at end of file
    try:
        read_input_file(path)
    except TargetError as exc:
        assert "\n" not in str(exc)


def test_a_port_cell_that_is_not_a_list_of_numbers_is_an_error_not_other_ports(
    tmp_path: Path,
) -> None:
    """'111<NUL>12' or '1e3' in a port column used to become ports 111 and 12 (1 and 3)."""
    for cell in ("111\x0012", "1e3", "104.5"):
        path = tmp_path / "hits.csv"
        path.write_text(f"ip,port\n127.0.0.1,{cell}\n")
        try:
            got = pairs(path)
        except TargetError as exc:
            assert "port" in str(exc) and "\n" not in str(exc)
        else:
            raise AssertionError(f"{cell!r} gave {got}")
    lists = tmp_path / "lists.csv"
    lists.write_text('ip,ports\n127.0.0.1,"[104, 11112]"\n127.0.0.2,104;4242\n127.0.0.3,104/tcp\n')
    assert pairs(lists) == [
        ("127.0.0.1", (104, 11112)),
        ("127.0.0.2", (104, 4242)),
        ("127.0.0.3", (104,)),
    ]


def test_an_exclude_file_saved_with_a_bom_excludes_its_first_line(tmp_path: Path) -> None:
    from dicomguard.scan.targets import build_targets

    never = tmp_path / "never.txt"
    never.write_bytes("\ufeff127.0.0.2\r\n127.0.0.3  # the archive\r\n".encode())
    ts = build_targets(["127.0.0.0/30"], ports=[104], exclude_files=[never])
    assert [h for h, _p in ts] == ["127.0.0.0", "127.0.0.1"]


def test_an_ipv4_mapped_ipv6_address_is_the_ipv4_host_scanned_once(tmp_path: Path) -> None:
    """'::ffff:127.0.0.1' (dual-stack logs, some exports) reaches 127.0.0.1: one endpoint,
    one host for --per-host and the totals, never the same server twice."""
    from dicomguard.scan.targets import build_targets

    hp = tmp_path / "hits.txt"
    hp.write_text("127.0.0.1:104\n[::ffff:127.0.0.1]:104\n[::ffff:127.0.0.2]:104\n")
    ts = build_targets(["::ffff:127.0.0.1"], ports=[104], input_files=[hp])
    assert sorted(ts) == [("127.0.0.1", 104), ("127.0.0.2", 104)]


def test_a_file_endpoint_on_exactly_the_p_ports_is_scanned(tmp_path: Path) -> None:
    """Found by a fresh tester: 'masscan -p104 ... -oL hits; dicomguard scan -iL hits -p 104'
    silently scanned nothing - a host whose file ports equal -p fell into the -p block's
    key and was then dropped from it."""
    from dicomguard.scan.targets import build_targets

    hits = tmp_path / "hits.txt"
    hits.write_text("#masscan\nopen tcp 104 127.0.0.2 1700000000\nopen tcp 11112 127.0.0.3 1\n")
    alone = build_targets([], ports=[104], input_files=[hits])
    assert sorted(alone) == [("127.0.0.2", 104), ("127.0.0.3", 11112)]
    assert alone.count() == 2
    typed = build_targets(["127.0.0.1"], ports=[104], input_files=[hits])
    assert sorted(typed) == [("127.0.0.1", 104), ("127.0.0.2", 104), ("127.0.0.3", 11112)]
    assert typed.count() == 3
    assert sorted(p for k in range(3) for p in typed.shard(k, 3)) == sorted(typed)
