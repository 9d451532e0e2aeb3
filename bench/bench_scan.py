"""Benchmark: dicomguard scan vs nmap --script dicom-ping on loopback, one run.

Two workloads, each scanned by both tools in the same run:

* sparse: a /16 x 5 ports around a 64-server lab (327,680 endpoints, 171 DICOM services): the
  cost of the port sweep;
* all-DICOM (issue 13, what a zmap/masscan list of open ports looks like): one real Orthanc
  answering every address of a loopback /20 on one port (4,096 associations), and a lab fleet
  where every host is a DICOM server: the cost of the association.

Prints times, ratios, what each found, CPU per association (user + system of the scanner's
process and its reaped children, from wait4: the same kernel accounting as /proc/<pid>/stat),
and the peak memory of dicomguard as the target list grows from a /24 to a /8.

    python bench/bench_scan.py [--workload both|sparse|all-dicom] [--hosts 64]

Everything targets 127.0.0.0/8 only. The lab runs in its own process so the scanners do not
share its event loop; Orthanc binds every interface, so the script re-executes itself in a
loopback-only network namespace first.
"""

from __future__ import annotations

import argparse
import ipaddress
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import typing
from dataclasses import dataclass
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


@dataclass
class Run:
    """One command's outcome: wall seconds, peak RSS of its tree (KiB), exit code, stdout and
    CPU seconds (user + system) of the process and every child it waited for."""

    secs: float
    peak: int
    code: int
    out: str
    cpu: float


def _cpu_of(pid: int) -> float:
    """CPU seconds (utime + stime + children's) of a live process, from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def run(argv: list[str], *, timeout: float = 900) -> Run:
    """Run a command; measure its wall time, peak RSS and CPU time."""
    # output goes to files, not pipes: a pipe nobody reads blocks the child once it is full
    with tempfile.TemporaryFile("w+") as out_f, tempfile.TemporaryFile("w+") as err_f:
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out_f, stderr=err_f, text=True)
        peak = 0
        while True:
            # wait4 reaps the child and returns its rusage, reaped grandchildren included
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, _tree_rss_kib(proc.pid))
            time.sleep(0.02)
        elapsed = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out_f.seek(0)
        err_f.seek(0)
        out, err = out_f.read(), err_f.read()
    code = proc.returncode
    if code not in (0, -9):
        print(f"command failed ({code}): {' '.join(argv)}\n{err[-2000:]}", file=sys.stderr)
    return Run(elapsed, peak, code, out, usage.ru_utime + usage.ru_stime)


def start_lab(
    network: str, personas: list[str], ports: str, extra: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "dicomguard", "lab", "--network", network, "--ports", ports]
    for p in personas:
        argv += ["--persona", p]
    lab = subprocess.Popen([*argv, *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    hosts = list(itertools.islice(ipaddress.ip_network(network).hosts(), len(personas)))
    port = int(ports.split(",")[0])
    import socket

    while time.monotonic() < deadline:
        try:
            for host in (hosts[0], hosts[-1]):  # the fleet binds in order: first and last
                socket.create_connection((str(host), port), 0.2).close()
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
    ap.add_argument(
        "--workload",
        choices=("both", "sparse", "all-dicom"),
        default="both",
        help="sparse /16 around the lab, all-DICOM /20 (Orthanc + lab fleet), or both",
    )
    ap.add_argument("--network", default="127.42.0.0/24", help="where the lab servers live")
    ap.add_argument(
        "--targets",
        default="127.42.0.0/16",
        help="what both scanners scan: the lab plus empty loopback space around it",
    )
    ap.add_argument("--hosts", type=int, default=64, help="lab servers in the network")
    ap.add_argument(
        "--dense-targets",
        default="127.1.0.0/20",
        help="all-DICOM workload: every address answered by one Orthanc",
    )
    ap.add_argument(
        "--fleet-network",
        default="127.44.0.0/20",
        help="all-DICOM workload: where the lab fleet of DICOM servers lives",
    )
    ap.add_argument(
        "--fleet-hosts",
        type=int,
        default=2048,
        help="all-DICOM workload: lab servers, every one DICOM (0: skip the fleet)",
    )
    ap.add_argument(
        "--workers",
        default="auto",
        help="dicomguard --workers for the scans compared with nmap (default auto)",
    )
    ap.add_argument(
        "--memory-seconds",
        type=float,
        default=20.0,
        help="how long the /8 memory run scans before it is stopped",
    )
    args = ap.parse_args()
    loopback = ipaddress.ip_network("127.0.0.0/8")
    for text in (args.targets, args.network, args.dense_targets, args.fleet_network):
        if not ipaddress.ip_network(text).subnet_of(loopback):  # type: ignore[arg-type]
            raise SystemExit("benchmarks target loopback only")
    nmap = shutil.which("nmap")
    if not nmap:
        raise SystemExit("nmap is not installed (scripts/bootstrap installs it)")
    tmp = Path(tempfile.mkdtemp(prefix="dg-bench-"))
    if args.workload in ("both", "all-dicom"):
        all_dicom(args, nmap, tmp)
    if args.workload in ("both", "sparse"):
        sparse(args, nmap, tmp)
        memory(args, tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def sparse(args: argparse.Namespace, nmap: str, tmp: Path) -> None:
    """The /16 x 5 ports around the lab: mostly closed ports, 171 DICOM services."""
    net = ipaddress.ip_network(args.targets)
    endpoints = net.num_addresses * len(PORTS.split(","))
    lab = start_lab(
        args.network, [PERSONAS[i % len(PERSONAS)] for i in range(args.hosts)], "104,11112,4242"
    )
    rows = []
    try:
        # nmap: TCP scan + dicom-ping on open ports (its default timing, then -T4 as people use it)
        for label, extra in (("nmap dicom-ping", []), ("nmap dicom-ping -T4", ["-T4"])):
            xml = tmp / "nmap.xml"
            r = run(
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
            rows.append((label, r.secs, r.peak, nmap_found(xml.read_text())))
        for label, extra in (
            ("dicomguard --discovery", ["--discovery"]),
            ("dicomguard full assessment", []),
        ):
            out = tmp / f"dg{len(rows)}.jsonl"
            r = run(
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
                    "--workers",
                    args.workers,
                    *extra,
                ]
            )
            rows.append((label, r.secs, r.peak, count_jsonl(out)))
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


def memory(args: argparse.Namespace, tmp: Path) -> None:
    """Peak RSS of one scan process as the target list grows from a /24 to a /8."""
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


def scan_argv(targets: str, port: int, out: Path, db: Path, workers: str, *extra: str) -> list[str]:
    return [
        *dicomguard(),
        "scan",
        targets,
        "-p",
        str(port),
        "--rate",
        "0",
        "--no-progress",
        "-q",
        "--jsonl",
        str(out),
        "--db",
        str(db),
        "--workers",
        workers,
        *extra,
    ]


def compare_dense(
    title: str,
    targets: str,
    port: int,
    nmap: str,
    tmp: Path,
    workers: str,
    server_pid: int | None,
    startup: float,
    diagnose_concurrency: bool = False,
) -> None:
    """nmap dicom-ping, dicomguard --discovery and the full assessment on one all-DICOM target
    set, one after the other; CPU per association for each (and for the server, if known)."""
    n = ipaddress.ip_network(targets).num_addresses
    rows = []
    xml = tmp / f"nmap-dense{port}.xml"
    runs = [
        (
            "nmap dicom-ping",
            [
                nmap,
                "-n",
                "-Pn",
                "-p",
                str(port),
                "--script",
                "+dicom-ping",
                "-oX",
                str(xml),
                targets,
            ],
            lambda: nmap_found(xml.read_text()),
        )
    ]
    floor_out = tmp / f"floor{port}.txt"
    runs.append(
        (
            "asyncio floor (no checks)",
            [sys.executable, __file__, "--floor-probe", targets, str(port), str(floor_out)],
            lambda: int(floor_out.read_text()),
        )
    )
    variants: list[tuple[str, tuple[str, ...]]] = [
        ("dicomguard --discovery", ("--discovery",)),
        ("dicomguard full", ()),
    ]
    if diagnose_concurrency:
        # not a default: shows what the server's accept queue costs (see bench/README.md)
        variants.append(("  (--discovery --conc. 32)", ("--discovery", "--concurrency", "32")))
    for label, extra in variants:
        tag = f"{port}-{len(runs)}"
        out, db = tmp / f"dense{tag}.jsonl", tmp / f"dense{tag}.db"
        runs.append(
            (
                label,
                scan_argv(targets, port, out, db, workers, *extra),
                lambda out=out: count_jsonl(out),  # type: ignore[misc]
            )
        )
    for label, argv, found in runs:
        before = _cpu_of(server_pid) if server_pid else 0.0
        dropped = _listen_overflows()
        r = run(argv)
        server = _cpu_of(server_pid) - before if server_pid else None
        rows.append((label, r, found(), server, _listen_overflows() - dropped))
    print(f"\n{title}: {targets} on port {port} = {n} endpoints, every one DICOM")
    print(
        f"{'scanner':26} {'seconds':>8} {'assoc/s':>8} {'found':>6} {'peak RSS':>9}"
        f" {'CPU s':>6} {'CPU/assoc':>10} {'server CPU/assoc':>17} {'SYNs dropped':>13}"
    )
    for label, r, found_n, server, dropped in rows:
        srv = f"{server / n * 1000:14.3f} ms" if server is not None else f"{'':>17}"
        print(
            f"{label:26} {r.secs:8.2f} {n / r.secs:8.0f} {found_n:6d} {r.peak / 1024:7.0f}MB"
            f" {r.cpu:6.2f} {r.cpu / n * 1000:7.3f} ms {srv} {dropped:13d}"
        )
    print(
        "(SYNs dropped: the namespace's TcpExt ListenOverflows, connections refused by a full "
        "accept queue; each costs its sender a 1 s SYN retransmission)"
    )
    ping, _floor, disc, full = (row[1] for row in rows[:4])
    print(
        f"ratio discovery  (nmap dicom-ping / dicomguard --discovery): {ping.secs / disc.secs:.2f}x"
        "  (target >= 3x)"
    )
    print(
        f"ratio assessment (nmap dicom-ping / dicomguard full):        {ping.secs / full.secs:.2f}x"
        "  (target >= 1x)"
    )
    print(
        f"CPU per association, discovery: {disc.cpu / n * 1000:.3f} ms, "
        f"{(disc.cpu - startup) / n * 1000:.3f} ms without the start-up  (target <= 0.3 ms)"
    )
    print_bounds(ping.secs, rows, n)


def print_bounds(ping_secs: float, rows: list[tuple[typing.Any, ...]], n: int) -> None:
    """What the machine allows at best: a client as cheap as the floor probe, plus the CPU the
    server spent per association on the same exchange, spread perfectly over every core, can
    not finish sooner than n x (client + server CPU per association) / cores. nmap's time over
    that is the highest ratio any client doing this exchange could show here (an optimistic
    bound: kernel work in softirq, scheduling and round trips only lower it)."""
    cores = os.cpu_count() or 1
    floor, floor_server = rows[1][1], rows[1][3]
    disc_server, full_server = rows[2][3], rows[3][3]
    if floor_server is None or disc_server is None or full_server is None:
        return
    disc_server = min(disc_server, floor_server)  # the same exchange: the cheaper one bounds
    best_disc = (floor.cpu + disc_server) / cores
    best_full = full_server / cores  # the server's own work alone, with a client costing nothing
    print(
        f"bound on {cores} cores: discovery no sooner than {best_disc:.2f} s (floor client "
        f"{floor.cpu / n * 1000:.3f} + server {disc_server / n * 1000:.3f} ms CPU per association)"
        f" = at most {ping_secs / best_disc:.2f}x nmap; full no sooner than {best_full:.2f} s "
        f"(server {full_server / n * 1000:.3f} ms per endpoint) = at most "
        f"{ping_secs / best_full:.2f}x nmap"
    )


def _listen_overflows() -> int:
    """TcpExt ListenOverflows of this network namespace (/proc/net/netstat): SYNs and
    handshakes a listener dropped because its accept queue was full."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return 0
    for head, values in zip(lines[::2], lines[1::2], strict=False):
        if head.startswith("TcpExt:"):
            fields = dict(zip(head.split()[1:], values.split()[1:], strict=False))
            return int(fields.get("ListenOverflows", 0))
    return 0


def startup_cpu(tmp: Path) -> float:
    """CPU seconds of a scan of one closed endpoint: dicomguard's fixed start-up cost."""
    return run(
        [
            *dicomguard(),
            "scan",
            "127.0.0.1",
            "-p",
            "9",
            "--discovery",
            "--no-progress",
            "-q",
            "--db",
            str(tmp / "startup.db"),
            "--workers",
            "1",
        ]
    ).cpu


def all_dicom(args: argparse.Namespace, nmap: str, tmp: Path) -> None:
    """Issue 13: every address is a DICOM server, so the association is the cost."""
    from dicomguard.testing.base import default_patients
    from dicomguard.testing.orthanc import OrthancServer

    startup = startup_cpu(tmp)
    print(f"dicomguard start-up (scan of one closed port): {startup:.2f} s of CPU")
    # open preset: DicomCheckCalledAet false, every Q/R service allowed; 3 patients, 7 studies
    with OrthancServer("127.0.0.1", patients=default_patients(1, 3)) as orthanc:
        pid = orthanc._proc.pid if orthanc._proc is not None else None
        compare_dense(
            "All-DICOM, one real Orthanc 1.10.1",
            args.dense_targets,
            orthanc.port,
            nmap,
            tmp,
            args.workers,
            pid,
            startup,
            diagnose_concurrency=True,
        )
    if args.fleet_hosts:
        net = ipaddress.ip_network(args.fleet_network)
        prefix = 32 - (args.fleet_hosts - 1).bit_length()
        targets = str(ipaddress.ip_network(f"{net.network_address}/{prefix}", strict=False))
        # lab hosts are numbered from .1: the target /N holds one server per address but the
        # first (network address, closed)
        servers = ipaddress.ip_network(targets).num_addresses - 1
        port = 11112
        lab = start_lab(args.fleet_network, ["open"] * servers, str(port), ("--max-patients", "3"))
        try:
            compare_dense(
                f"All-DICOM, lab fleet of {servers} 'open' servers",
                targets,
                port,
                nmap,
                tmp,
                args.workers,
                lab.pid,
                startup,
            )
        finally:
            lab.terminate()
            lab.wait(10)


def floor_probe(targets: str, port: int, out: str) -> None:
    """The cheapest asyncio client of the discovery exchange, for reference: per address one
    connection, A-ASSOCIATE-RQ, then C-ECHO-RQ and A-RELEASE-RQ in one write from the callback
    that received the A-ASSOCIATE-AC (the two round trips dicomguard --discovery makes), then
    close after the A-RELEASE-RP (no task, stream, timeout, congestion window or check of any
    kind). What is left between it and dicomguard --discovery is dicomguard's own cost; what
    is left between it and nmap is the server and the kernel. Writes how many exchanges
    completed."""
    import asyncio

    from dicomguard.dul import dimse
    from dicomguard.dul import pdu as P
    from dicomguard.dul.acse import AssociateRequest

    rq = AssociateRequest(called_aet="ANY-SCP", abstract_syntaxes=(dimse.VERIFICATION,)).encode()
    echo = b"".join(dimse.echo_pdus(1, 1, 16384))
    release = P.RELEASE_RQ

    class Probe(asyncio.Protocol):
        def __init__(self, done: asyncio.Future[int]) -> None:
            self.buf = b""
            self.step = 0
            self.done = done

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            transport.write(rq)  # type: ignore[attr-defined]

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while len(self.buf) >= 6:
                end = 6 + int.from_bytes(self.buf[2:6], "big")
                if len(self.buf) < end:
                    return
                self.buf = self.buf[end:]
                self.step += 1
                if self.step == 1:
                    self.transport.write(echo + release)  # type: ignore[attr-defined]
                elif self.step == 3:
                    self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            if not self.done.done():
                self.done.set_result(self.step)

    async def one(host: str, sem: asyncio.Semaphore) -> int:
        loop = asyncio.get_running_loop()
        async with sem:
            done: asyncio.Future[int] = loop.create_future()
            try:
                await loop.create_connection(lambda: Probe(done), host, port)
            except OSError:
                return 0
            return await done

    async def probe_all() -> int:
        sem = asyncio.Semaphore(256)
        hosts = [str(h) for h in ipaddress.ip_network(targets)]
        results = await asyncio.gather(*(one(h, sem) for h in hosts))
        return sum(1 for r in results if r == 3)

    Path(out).write_text(str(asyncio.run(probe_all())))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--floor-probe"]:
        floor_probe(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        raise SystemExit(0)
    # storescp/Orthanc bind every interface: run in a loopback-only network namespace.
    from dicomguard.testing.netns import reexec_isolated

    reexec_isolated()
    raise SystemExit(main())
