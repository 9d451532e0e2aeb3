"""-iL files: plain target lists and masscan / zmap / nmap output, autodetected.

Files are written by each test with 127.x / documentation addresses only; nothing connects.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomguard.scan.targets import (
    FileTarget,
    TargetError,
    build_targets,
    detect_input_format,
    read_input_file,
)

MASSCAN_LIST = """\
#masscan
open tcp 11112 127.0.0.1 1690000000
open tcp 104 127.0.0.1 1690000001
open tcp 4242 127.0.0.2 1690000002
banner tcp 11112 127.0.0.1 1690000003 unknown \\x00
closed tcp 2762 127.0.0.3 1690000004
open udp 104 127.0.0.4 1690000005
# end
"""

# as masscan -oJ writes it: one record per line and a comma before the closing bracket
MASSCAN_JSON = """[
{   "ip": "127.0.0.1",   "timestamp": "1690000000", "ports": [ {"port": 11112, "proto": "tcp", "status": "open", "reason": "syn-ack", "ttl": 64} ] }
,
{   "ip": "127.0.0.2",   "timestamp": "1690000001", "ports": [ {"port": 104, "proto": "tcp", "status": "open", "reason": "syn-ack", "ttl": 64} ] }
,
{   "ip": "127.0.0.1",   "timestamp": "1690000002", "ports": [ {"port": 104, "proto": "tcp", "service": {"name": "unknown", "banner": ""} } ] }
,
{   "ip": "127.0.0.3",   "timestamp": "1690000003", "ports": [ {"port": 104, "proto": "tcp", "status": "closed"} ] }
,
]
"""  # noqa: E501

NMAP_XML = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE nmaprun>
<nmaprun scanner="nmap" args="nmap -p 104,11112 -oX - 127.0.0.0/29" version="7.94">
<host starttime="1690000000"><status state="up" reason="syn-ack"/>
<address addr="127.0.0.1" addrtype="ipv4"/>
<hostnames><hostname name="localhost" type="PTR"/></hostnames>
<ports>
<port protocol="tcp" portid="104"><state state="open" reason="syn-ack"/>
<service name="dicom"/></port>
<port protocol="tcp" portid="11112"><state state="closed" reason="reset"/></port>
</ports></host>
<host><status state="up"/>
<address addr="127.0.0.2" addrtype="ipv4"/><address addr="02:00:00:00:00:01" addrtype="mac"/>
<ports>
<port protocol="tcp" portid="11112"><state state="open" reason="syn-ack"/></port>
<port protocol="udp" portid="104"><state state="open"/></port>
<port protocol="tcp" portid="4242"><state state="filtered" reason="no-response"/></port>
</ports></host>
<host><status state="up"/><address addr="127.0.0.3" addrtype="ipv4"/>
<ports><port protocol="tcp" portid="104"><state state="closed"/></port></ports></host>
<host><status state="up"/><address addr="::1" addrtype="ipv6"/>
<ports><port protocol="tcp" portid="2762"><state state="open"/></port></ports></host>
<runstats><finished time="1690000009"/></runstats>
</nmaprun>
"""

GREPABLE = """\
# Nmap 7.94 scan initiated as: nmap -p 104,11112 -oG - 127.0.0.0/30
Host: 127.0.0.1 (localhost)\tStatus: Up
Host: 127.0.0.1 (localhost)\tPorts: 104/open/tcp//dicom///, 11112/closed/tcp/////
Host: 127.0.0.2 ()\tPorts: 104/filtered/tcp/////
# Nmap done at Sat Jul 22 2023 -- 4 IP addresses (2 hosts up) scanned
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_plain_list_with_comments_commas_and_blank_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "targets.txt",
        "# lab hosts\n127.0.0.1, 127.0.0.2 ::1\n\n   \n127.0.1.0/30 # tail comment\n"
        "127.0.2.1,3\npacs.example.invalid\n",
    )
    assert read_input_file(path) == [
        FileTarget("127.0.0.1", None, f"{path}:2"),
        FileTarget("127.0.0.2", None, f"{path}:2"),
        FileTarget("::1", None, f"{path}:2"),
        FileTarget("127.0.1.0/30", None, f"{path}:5"),
        FileTarget("127.0.2.1,3", None, f"{path}:6"),
        FileTarget("pacs.example.invalid", None, f"{path}:7"),
    ]
    # a name read from a file is scanned only when names from files may be resolved
    targets = build_targets([], ports=(104,), input_files=[path], resolve_file_names=True)
    hosts = [h for h, _ in targets.iter_endpoints()]
    assert len(hosts) == 2 + 4 + 2 + 1 + 1
    assert "127.0.2.3" in hosts


def test_bad_spec_in_a_list_file_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "targets.txt", "127.0.0.1\n\n127.0.0.256\n")
    with pytest.raises(TargetError, match=r"targets\.txt:3: bad target '127\.0\.0\.256'"):
        build_targets([], input_files=[path])


def test_masscan_list_import(tmp_path: Path) -> None:
    path = write(tmp_path, "masscan.txt", MASSCAN_LIST)
    assert detect_input_format(MASSCAN_LIST) == "masscan-list"
    assert [(t.spec, t.ports) for t in read_input_file(path)] == [
        ("127.0.0.1", (104, 11112)),
        ("127.0.0.2", (4242,)),
    ]


def test_masscan_list_without_header_is_detected(tmp_path: Path) -> None:
    path = write(tmp_path, "m.txt", "open tcp 11112 127.0.0.9 1690000000\n")
    assert [(t.spec, t.ports) for t in read_input_file(path)] == [("127.0.0.9", (11112,))]


def test_masscan_list_garbage_line_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "m.txt", "#masscan\nopen tcp 104 127.0.0.1 1\nhello there\n")
    with pytest.raises(TargetError, match=r"m\.txt:3: not a masscan -oL line"):
        read_input_file(path)


def test_masscan_json_import_tolerates_trailing_comma(tmp_path: Path) -> None:
    path = write(tmp_path, "masscan.json", MASSCAN_JSON)
    assert [(t.spec, t.ports) for t in read_input_file(path)] == [
        ("127.0.0.1", (104, 11112)),  # the banner record counts as open
        ("127.0.0.2", (104,)),
    ]


def test_masscan_ndjson_import(tmp_path: Path) -> None:
    text = (
        '{"ip": "127.0.0.5", "ports": [{"port": 4242, "proto": "tcp", "status": "open"}]}\n'
        '{"ip": "::1", "ports": [{"port": 104, "proto": "tcp", "status": "open"}]}\n'
    )
    path = write(tmp_path, "m.ndjson", text)
    assert [(t.spec, t.ports) for t in read_input_file(path)] == [
        ("127.0.0.5", (4242,)),
        ("::1", (104,)),
    ]


def test_masscan_json_with_bad_address_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "m.json", '[{"ip": "127.0.0.999", "ports": [{"port": 104}]}]')
    with pytest.raises(TargetError, match="is not an IP address"):
        read_input_file(path)


def test_nmap_xml_import(tmp_path: Path) -> None:
    path = write(tmp_path, "scan.xml", NMAP_XML)
    assert detect_input_format(NMAP_XML) == "nmap-xml"
    assert [(t.spec, t.ports) for t in read_input_file(path)] == [
        ("127.0.0.1", (104,)),
        ("127.0.0.2", (11112,)),
        ("::1", (2762,)),
    ]


def test_truncated_nmap_xml_keeps_the_hosts_written_so_far(tmp_path: Path) -> None:
    cut = NMAP_XML.index('<host><status state="up"/><address addr="127.0.0.3"')
    path = write(tmp_path, "scan.xml", NMAP_XML[:cut])
    assert [t.spec for t in read_input_file(path)] == ["127.0.0.1", "127.0.0.2"]


def test_xml_that_is_not_nmap_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "other.xml", "<?xml version='1.0'?><feed><entry/></feed>")
    with pytest.raises(TargetError, match="not nmap -oX"):
        read_input_file(path)


def test_broken_nmap_xml_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.xml", "<nmaprun><host></nmaprun>")
    with pytest.raises(TargetError, match="not valid nmap XML"):
        read_input_file(path)


def test_grepable_output_import(tmp_path: Path) -> None:
    path = write(tmp_path, "scan.gnmap", GREPABLE)
    assert [(t.spec, t.ports) for t in read_input_file(path)] == [("127.0.0.1", (104,))]


def test_zmap_csv_with_saddr_column_gives_plain_hosts(tmp_path: Path) -> None:
    csv_text = "saddr,daddr,ttl\n127.0.0.1,127.0.0.100,64\n127.0.0.2,127.0.0.100,64\n"
    path = write(tmp_path, "zmap.csv", csv_text)
    assert detect_input_format(path.read_text()) == "zmap-csv"
    assert [(t.spec, t.ports) for t in read_input_file(path)] == [
        ("127.0.0.1", None),
        ("127.0.0.2", None),
    ]


def test_zmap_csv_with_port_and_success_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "zmap.csv",
        "saddr,sport,classification,success\n"
        "127.0.0.1,11112,synack,1\n127.0.0.2,104,rst,0\n127.0.0.1,104,synack,1\n",
    )
    assert [(t.spec, t.ports) for t in read_input_file(path)] == [("127.0.0.1", (104, 11112))]


def test_zmap_plain_output_is_a_list(tmp_path: Path) -> None:
    path = write(tmp_path, "zmap.txt", "127.0.0.1\n127.0.0.7\n")
    assert detect_input_format(path.read_text()) == "list"
    targets = build_targets([], ports=(104, 4242), input_files=[path])
    assert targets.count() == 4


def test_file_ports_override_the_default_ports_for_that_host(tmp_path: Path) -> None:
    path = write(tmp_path, "masscan.txt", MASSCAN_LIST)
    targets = build_targets([], ports=(2761, 2762), input_files=[path])
    assert targets.count() == 3
    assert list(targets.iter_endpoints()) == [
        ("127.0.0.1", 104),
        ("127.0.0.1", 11112),
        ("127.0.0.2", 4242),
    ]


def test_host_both_in_a_range_and_in_scanner_output_is_not_probed_twice(tmp_path: Path) -> None:
    path = write(tmp_path, "masscan.txt", MASSCAN_LIST)
    targets = build_targets(["127.0.0.0/30"], ports=(104,), input_files=[path])
    got = list(targets.iter_endpoints())
    assert len(got) == len(set(got)) == targets.count() == 4 + 2
    assert set(got) >= {("127.0.0.1", 104), ("127.0.0.1", 11112), ("127.0.0.2", 4242)}


def test_several_files_union_the_ports_of_one_host(tmp_path: Path) -> None:
    a = write(tmp_path, "a.txt", "open tcp 104 127.0.0.1 1\n")
    b = write(tmp_path, "b.xml", NMAP_XML)
    targets = build_targets([], input_files=[a, b])
    assert sorted(targets.iter_endpoints()) == [
        ("127.0.0.1", 104),
        ("127.0.0.2", 11112),
        ("::1", 2762),
    ]


def test_excludes_apply_to_imported_hosts(tmp_path: Path) -> None:
    path = write(tmp_path, "scan.xml", NMAP_XML)
    targets = build_targets([], input_files=[path], excludes=["127.0.0.2", "::1"])
    assert list(targets.iter_endpoints(order="spread")) == [("127.0.0.1", 104)]
    assert targets.all_loopback()


def test_missing_input_file_raises_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        build_targets([], input_files=[tmp_path / "nope.txt"])
