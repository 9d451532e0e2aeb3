"""-iL with what surveys start from: Shodan, Censys, masscan ndjson, zmap, CSV, stdin, gzip.

Every sample is written the way the tool writes it (checked against its source: masscan
src/out-json.c and src/out-ndjson.c, zmap src/output_modules/module_csv.c and module_json.c,
Shodan's banner fields, Censys host records) and names loopback endpoints only; nothing
connects here.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dicomguard.scan.targets import TargetError, build_targets, read_input_file

SHODAN = [
    {
        "ip": 2130706433,
        "ip_str": "127.0.0.1",
        "port": 104,
        "transport": "tcp",
        "data": "DICOM",
        "timestamp": "2026-01-02T03:04:05.000000",
        "asn": "AS64500",
        "location": {"country_code": "ZZ"},
        "hostnames": ["pacs.example.invalid"],
    },
    {"ip_str": "127.0.0.1", "port": 11112, "transport": "tcp", "data": ""},
    {"ip_str": "127.0.0.2", "port": 104, "transport": "udp", "data": ""},
    {"ip_str": "::1", "port": 4242, "transport": "tcp", "data": ""},
]

CENSYS = [
    {
        "ip": "127.0.0.3",
        "services": [
            {"port": 104, "service_name": "DICOM", "transport_protocol": "TCP"},
            {"port": 161, "service_name": "SNMP", "transport_protocol": "UDP"},
            {"port": 8042, "service_name": "HTTP", "transport_protocol": "TCP"},
        ],
        "location": {"country_code": "ZZ"},
        "autonomous_system": {"asn": 64500},
    },
    {"ip": "127.0.0.4", "services": [{"port": 11112, "transport_protocol": "TCP"}]},
]

# masscan --output-format ndjson (src/out-ndjson.c): port and proto at the top level
MASSCAN_NDJSON = (
    '{"ip":"127.0.0.5","timestamp":"1690000000","port":104,"proto":"tcp","rec_type":"status",'
    '"data":{"status":"open","reason":"syn-ack","ttl":64}}\n'
    '{"ip":"127.0.0.5","timestamp":"1690000001","port":104,"proto":"tcp","rec_type":"banner",'
    '"data":{"service_name":"unknown","banner":""}}\n'
    '{"ip":"127.0.0.6","timestamp":"1690000002","port":11112,"proto":"tcp","rec_type":"status",'
    '"data":{"status":"closed","reason":"rst","ttl":64}}\n'
    '{"ip":"127.0.0.7","timestamp":"1690000003","port":4242,"proto":"tcp","rec_type":"status",'
    '"data":{"status":"open","reason":"syn-ack","ttl":64}}\n'
)

# zmap -O json -f saddr,sport,classification,success: RSTs are kept with success 0
ZMAP_JSON = (
    '{"saddr":"127.0.0.8","sport":104,"classification":"synack","success":true}\n'
    '{"saddr":"127.0.0.9","sport":104,"classification":"rst","success":false}\n'
    '{"saddr":"127.0.0.8","sport":11112,"classification":"synack","success":true}\n'
)

# zmap -O csv -f saddr,sport,success: the header is joined with ", " (module_csv.c)
ZMAP_CSV = "saddr, sport, success\n127.0.0.10,104,1\n127.0.0.11,104,0\n"


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


def pairs(path: Path) -> list[tuple[str, tuple[int, ...] | None]]:
    return [(t.spec, t.ports) for t in read_input_file(path)]


def jsonl(records: list[dict[str, object]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_shodan_download_gzipped_gives_tcp_banners_with_their_ports(tmp_path: Path) -> None:
    path = write(tmp_path, "dicom.json.gz", gzip.compress(jsonl(SHODAN).encode()))
    assert pairs(path) == [("127.0.0.1", (104, 11112)), ("::1", (4242,))]


def test_gzip_is_recognised_by_magic_bytes_not_by_name(tmp_path: Path) -> None:
    path = write(tmp_path, "results.txt", gzip.compress(b"127.0.0.1\n127.0.0.2\n"))
    assert pairs(path) == [("127.0.0.1", None), ("127.0.0.2", None)]


def test_damaged_gzip_is_one_clear_error(tmp_path: Path) -> None:
    data = gzip.compress(jsonl(SHODAN).encode())
    path = write(tmp_path, "cut.json.gz", data[: len(data) // 2])
    with pytest.raises(TargetError, match=r"cut\.json\.gz: gzip data is damaged"):
        read_input_file(path)


def test_censys_json_lines_take_tcp_services_ports(tmp_path: Path) -> None:
    path = write(tmp_path, "censys.jsonl", jsonl(CENSYS))
    assert pairs(path) == [("127.0.0.3", (104, 8042)), ("127.0.0.4", (11112,))]


def test_censys_cli_json_array_and_platform_nesting(tmp_path: Path) -> None:
    array = write(tmp_path, "censys.json", json.dumps(CENSYS, indent=4))
    assert pairs(array) == [("127.0.0.3", (104, 8042)), ("127.0.0.4", (11112,))]
    nested = write(tmp_path, "platform.jsonl", jsonl([{"host": CENSYS[1]}]))
    assert pairs(nested) == [("127.0.0.4", (11112,))]


def test_censys_csv_export_with_header_row(tmp_path: Path) -> None:
    text = (
        "ip,services.port,services.transport_protocol,location.country_code\n"
        '127.0.0.3,"104;8042",TCP,ZZ\n'
        "127.0.0.4,11112,TCP,ZZ\n"
    )
    path = write(tmp_path, "censys.csv", text)
    assert pairs(path) == [("127.0.0.3", (104, 8042)), ("127.0.0.4", (11112,))]


def test_masscan_ndjson_port_at_top_level(tmp_path: Path) -> None:
    path = write(tmp_path, "masscan.ndjson", MASSCAN_NDJSON)
    assert pairs(path) == [("127.0.0.5", (104,)), ("127.0.0.7", (4242,))]


def test_zmap_json_keeps_only_successful_responses(tmp_path: Path) -> None:
    path = write(tmp_path, "zmap.json", ZMAP_JSON)
    assert pairs(path) == [("127.0.0.8", (104, 11112))]


def test_zmap_csv_header_with_spaces(tmp_path: Path) -> None:
    path = write(tmp_path, "zmap.csv", ZMAP_CSV)
    assert pairs(path) == [("127.0.0.10", (104,))]


def test_host_port_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "hp.txt", "127.0.0.1:104\n[::1]:11112\n127.0.0.1:4242 # pacs\n")
    assert pairs(path) == [("127.0.0.1", (104, 4242)), ("::1", (11112,))]


def test_ip_port_csv_with_and_without_header(tmp_path: Path) -> None:
    bare = write(tmp_path, "bare.csv", "127.0.0.1,104\n127.0.0.2,11112\n")
    assert pairs(bare) == [("127.0.0.1", (104,)), ("127.0.0.2", (11112,))]
    headed = write(tmp_path, "headed.csv", "ip,port\n127.0.0.1,104\n127.0.0.2,11112\n")
    assert pairs(headed) == [("127.0.0.1", (104,)), ("127.0.0.2", (11112,))]


def test_a_csv_header_never_becomes_a_host_name(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts.csv", "ip,port\n127.0.0.1,104\n")
    targets = build_targets([], ports=(4242,), input_files=[path])
    assert list(targets.iter_endpoints()) == [("127.0.0.1", 104)]
    only_header = write(tmp_path, "empty.csv", "ip,port\n")
    with pytest.raises(TargetError, match="looks like CSV with a header row but no target"):
        build_targets([], input_files=[only_header])


def test_csv_without_an_address_column_names_what_it_saw(tmp_path: Path) -> None:
    path = write(tmp_path, "odd.csv", "name,when\npacs,yesterday\n")
    with pytest.raises(TargetError, match=r"odd\.csv: looks like CSV.*no address column"):
        read_input_file(path)


@pytest.mark.parametrize(
    ("name", "text", "looked_like"),
    [
        ("empty.txt", "\n  \n", "empty"),
        ("closed.txt", "#masscan\nclosed tcp 104 127.0.0.1 1\n", "masscan -oL output"),
        ("rst.json", '{"saddr":"127.0.0.1","sport":104,"success":0}\n', "zmap JSON output"),
        ("udp.json", jsonl([SHODAN[2]]), "Shodan banners"),
        ("nmap.xml", "<nmaprun></nmaprun>", "nmap -oX output"),
    ],
)
def test_a_file_with_no_target_is_an_error_naming_its_format(
    tmp_path: Path, name: str, text: str, looked_like: str
) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(TargetError, match=looked_like):
        read_input_file(path)


def test_unknown_json_names_its_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "other.json", '{"address": "127.0.0.1", "when": 1}\n')
    with pytest.raises(TargetError, match=r"not masscan, zmap, Shodan or Censys.*'address'"):
        read_input_file(path)


def test_stdin_is_read_with_a_dash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = io.TextIOWrapper(io.BytesIO(gzip.compress(ZMAP_JSON.encode())))
    monkeypatch.setattr(sys, "stdin", fake)
    targets = build_targets([], input_files=[Path("-")])
    assert sorted(targets.iter_endpoints()) == [("127.0.0.8", 104), ("127.0.0.8", 11112)]


def test_names_in_files_need_resolve_names(tmp_path: Path) -> None:
    path = write(tmp_path, "names.txt", "127.0.0.1\nlocalhost\npacs.invalid:104\n")
    with pytest.raises(
        TargetError, match=r"names\.txt:2: 'localhost' is a host name \(and 1 more\)"
    ):
        build_targets([], input_files=[path])


def test_every_unresolvable_name_is_reported_not_dropped(tmp_path: Path) -> None:
    path = write(
        tmp_path, "names.txt", "localhost\nnope.invalid\nnope.invalid:11112\ngone.invalid\n"
    )
    looked_up: list[str] = []

    def resolver(names: list[str]) -> dict[str, list[str] | str]:
        looked_up.extend(names)
        return {
            n: ["127.0.0.1"] if n == "localhost" else "Name or service not known" for n in names
        }

    targets = build_targets(
        [], ports=(104,), input_files=[path], resolve_file_names=True, resolver=resolver
    )
    assert sorted(looked_up) == ["gone.invalid", "localhost", "nope.invalid"]  # each once
    assert list(targets.iter_endpoints()) == [("127.0.0.1", 104)]
    assert targets.count() == 1
    assert [(u.name, u.origin.rsplit(":", 1)[1]) for u in targets.unresolved] == [
        ("nope.invalid", "2"),
        ("gone.invalid", "4"),
    ]


def test_real_nmap_xml_and_grepable_output_of_a_loopback_scan(tmp_path: Path) -> None:
    """nmap itself (Debian's, installed by scripts/bootstrap) writes the files read here."""
    import shutil
    import socket
    import subprocess

    nmap = shutil.which("nmap")
    assert nmap, "scripts/bootstrap installs nmap"
    with socket.socket() as listener, socket.socket() as spare:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        spare.bind(("127.0.0.1", 0))  # bound, not listening: closed
        open_port, closed_port = listener.getsockname()[1], spare.getsockname()[1]
        xml, gnmap = tmp_path / "scan.xml", tmp_path / "scan.gnmap"
        subprocess.run(
            [
                nmap,
                "-sT",
                "-Pn",
                "-n",
                "-p",
                f"{open_port},{closed_port}",
                "127.0.0.1",
                "-oX",
                str(xml),
                "-oG",
                str(gnmap),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    assert pairs(xml) == [("127.0.0.1", (open_port,))]
    assert pairs(gnmap) == [("127.0.0.1", (open_port,))]


_FRAGMENTS = [
    '{"ip_str":"127.0.0.1","port":104}',
    '{"saddr":"127.0.0.1","sport":"x"}',
    '{"ip":"127.0.0.1","services":[{"port":-1}]}',
    '{"ip":"127.0.0.1","ports":[7]}',
    '{"ip":"::1","port":70000,"proto":"tcp"}',
    "[",
    "]",
    "{",
    "ip,port",
    "saddr, sport, success",
    "127.0.0.1,104",
    "127.0.0.1:0",
    "[::1]:65536",
    "open tcp 104 127.0.0.1 1",
    "Host: 127.0.0.1 ()\tPorts: 104/open/tcp//",
    "<nmaprun>",
    "#masscan",
    "\x00\xff",
    "",
]


@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=30)), max_size=8),
    gz=st.booleans(),
)
def test_any_file_gives_targets_or_one_target_error(lines: list[str], gz: bool) -> None:
    """Hostile or broken files: a TargetError (one line) or targets, never another exception."""
    import tempfile

    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f"
        path.write_bytes(gzip.compress(data) if gz else data)
        try:
            read_input_file(path)
        except TargetError as exc:
            assert "\n" not in str(exc)


def test_deeply_nested_json_is_refused_not_a_crash(tmp_path: Path) -> None:
    deep = write(tmp_path, "deep.json", "[" * 200_000 + "]" * 200_000)
    with pytest.raises(TargetError, match="nested too deeply"):
        read_input_file(deep)
    lines = write(tmp_path, "deep.jsonl", '{"ip": 1}\n' + "[" * 200_000 + "\n")
    with pytest.raises(TargetError):
        read_input_file(lines)
