"""Benchmark: dicomguard scan vs nmap --script dicom-ping on the same loopback lab, one run.

Prints discovery and full-assessment rates beside nmap's, their ratios, what each found, and
the peak memory of dicomguard as the target list grows from a /24 to a /8.

    python bench/bench_scan.py [--hosts 64] [--network 127.42.0.0/24]

Everything targets 127.0.0.0/8 only. The lab runs in its own process so the scanners do not
share its event loop.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PORTS = "104,11112,4242,2761,2762"
#: well-behaved personas: rates measure the scanners, not hostile servers' timeouts
PERSONAS = [
    "open",
    "called-aet-guessable",
    "called-aet-secret",
    "calling-aet-allowlist",
    "echo-only",
    "store-only",
    "user-identity-required",
    "capped",
    "not-dicom",
]


def _tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and its children now (a parallel scan forks workers)."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        m = re.search(r"VmRSS:\s+(\d+)", status)
        total += int(m.group(1)) if m else 0
    return total


def run(argv: list[str], *, timeout: float = 900) -> tuple[float, int, int, str]:
    """Run a command; return (seconds, peak RSS of its process tree in KiB, exit code, out)."""
    # output goes to files, not pipes: a pipe nobody reads blocks the child once it is full
    with tempfile.TemporaryFile("w+") as out_f, tempfile.TemporaryFile("w+") as err_f:
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out_f, stderr=err_f, text=True)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _tree_rss_kib(proc.pid))
            time.sleep(0.05)
        elapsed = time.monotonic() - start
        out_f.seek(0)
        err_f.seek(0)
        out, err = out_f.read(), err_f.read()
    code = proc.returncode
    if code not in (0, -9):
        print(f"command failed ({code}): {' '.join(argv)}\n{err[-2000:]}", file=sys.stderr)
    return elapsed, peak, code, out


def start_lab(network: str, hosts: int, ports: str) -> subprocess.Popen[bytes]:
    personas = [PERSONAS[i % len(PERSONAS)] for i in range(hosts)]
    argv = [sys.executable, "-m", "dicomguard", "lab", "--network", network, "--ports", ports]
    for p in personas:
        argv += ["--persona", p]
    lab = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    first_host = str(next(ipaddress.ip_network(network).hosts()))
    import socket

    while time.monotonic() < deadline:
        try:
            socket.create_connection((first_host, int(ports.split(",")[0])), 0.2).close()
            time.sleep(0.5)
            return lab
        except OSError:
            time.sleep(0.2)
    lab.kill()
    raise SystemExit("lab did not start")


def dicomguard(*args: str) -> list[str]:
    exe = shutil.which("dicomguard")
    return [exe] if exe else [sys.executable, "-m", "dicomguard"]


def count_jsonl(path: Path) -> int:
    n = 0
    with path.open() as fh:
        for line in fh:
            n += bool(json.loads(line).get("dicom"))
    return n


def nmap_found(xml: str) -> int:
    # dicom-ping prints this for an AC and for an RJ alike (its notion of "DICOM")
    # (the XML repeats it in an <elem>: count the script outputs only)
    return xml.count('output="&#xa;  dicom: DICOM Service Provider discovered')


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", default="127.42.0.0/24", help="where the lab servers live")
    ap.add_argument(
        "--targets",
        default="127.42.0.0/16",
        help="what both scanners scan: the lab plus empty loopback space around it",
    )
    ap.add_argument("--hosts", type=int, default=64, help="lab servers in the network")
    ap.add_argument(
        "--memory-seconds",
        type=float,
        default=20.0,
        help="how long the /8 memory run scans before it is stopped",
    )
    args = ap.parse_args()
    net = ipaddress.ip_network(args.targets)
    for n in (net, ipaddress.ip_network(args.network)):
        if not n.subnet_of(ipaddress.ip_network("127.0.0.0/8")):
            raise SystemExit("benchmarks target loopback only")
    nmap = shutil.which("nmap")
    if not nmap:
        raise SystemExit("nmap is not installed (scripts/bootstrap installs it)")
    endpoints = net.num_addresses * len(PORTS.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="dg-bench-"))
    lab = start_lab(args.network, args.hosts, "104,11112,4242")
    rows = []
    try:
        # nmap: TCP scan + dicom-ping on open ports (its default timing, then -T4 as people use it)
        for label, extra in (("nmap dicom-ping", []), ("nmap dicom-ping -T4", ["-T4"])):
            xml = tmp / "nmap.xml"
            secs, rss, _, _ = run(
                [
                    nmap,
                    "-n",
                    "-Pn",
                    "-p",
                    PORTS,
                    "--script",
                    "dicom-ping",
                    *extra,
                    "-oX",
                    str(xml),
                    args.targets,
                ]
            )
            rows.append((label, secs, rss, nmap_found(xml.read_text())))
        for label, extra in (
            ("dicomguard --discovery", ["--discovery"]),
            ("dicomguard full assessment", []),
        ):
            out = tmp / f"dg{len(rows)}.jsonl"
            secs, rss, _, _ = run(
                [
                    *dicomguard(),
                    "scan",
                    args.targets,
                    "-p",
                    PORTS,
                    "--rate",
                    "0",
                    "--no-progress",
                    "-q",
                    "--jsonl",
                    str(out),
                    "--db",
                    str(tmp / f"dg{len(rows)}.db"),
                    "--timeout",
                    "3",
                    *extra,
                ]
            )
            rows.append((label, secs, rss, count_jsonl(out)))
    finally:
        lab.terminate()
        lab.wait(10)

    print(
        f"\nTargets: {args.targets} x ports {PORTS} = {endpoints} endpoints; "
        f"lab: {args.hosts} servers on 104,11112,4242 ({len(PERSONAS)} personas)"
    )
    print(f"{'scanner':32} {'seconds':>8} {'endpoints/s':>12} {'DICOM found':>12} {'peak RSS':>10}")
    for label, secs, rss, found in rows:
        print(f"{label:32} {secs:8.2f} {endpoints / secs:12.0f} {found:12d} {rss / 1024:8.0f}MB")
    nmap_default, nmap_t4, disc, full = rows
    best_nmap = min(nmap_default[1], nmap_t4[1])
    print(
        f"\nratio discovery  (dicomguard --discovery vs fastest nmap): "
        f"{best_nmap / disc[1]:.2f}x  (target >= 3x)"
    )
    print(
        f"ratio assessment (dicomguard full vs fastest nmap ping):   "
        f"{best_nmap / full[1]:.2f}x  (target >= 1x)"
    )

    # memory: /24 to /8, same closed port, stopped after the same time
    mem = []
    for target in ("127.43.0.0/24", "127.0.0.0/16", "127.0.0.0/8"):
        argv = [
            *dicomguard(),
            "scan",
            target,
            "-p",
            "9",
            "--discovery",
            "--rate",
            "0",
            "--no-progress",
            "-q",
            "--db",
            str(tmp / "mem.db"),
            "--connect-timeout",
            "0.5",
            "--workers",
            "1",  # one process, so its peak RSS is the whole scan's
        ]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + args.memory_seconds
        peak = 0
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
                peak = max(peak, int(re.search(r"VmHWM:\s+(\d+)", status).group(1)))  # type: ignore[union-attr]
            except (OSError, AttributeError):
                pass
            time.sleep(0.2)
        proc.kill()
        proc.wait()
        (tmp / "mem.db").unlink(missing_ok=True)
        mem.append((target, peak))
    print(
        "\nPeak memory of dicomguard by target size (same scan, stopped after "
        f"{args.memory_seconds:g}s or at the end):"
    )
    for target, peak in mem:
        print(f"  {target:16} {peak / 1024:7.1f} MB")
    print(f"  /8 vs /24: {mem[-1][1] / max(mem[0][1], 1):.2f}x")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    # storescp/Orthanc bind every interface: run in a loopback-only network namespace.
    from dicomguard.testing.netns import reexec_isolated

    reexec_isolated()
    raise SystemExit(main())
