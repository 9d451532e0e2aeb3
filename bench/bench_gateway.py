"""Benchmark: C-STORE throughput direct, through the gateway, through the gateway with TLS, and
through stunnel (the TLS reference), in one run.

    python bench/bench_gateway.py [--small 1500] [--large 40] [--pdu 131072] [--repeat 7]

Two more rows put the plain gateway's ratio in context: ``socat relay`` is a byte pump written
in C with no DICOM inspection at all (what one extra hop costs on this machine, whoever makes
it), and ``gateway busy-poll`` is the gateway with ``limits.busy_poll_us`` set (it spins briefly
instead of sleeping between PDUs; off by default).

Sender: DCMTK storescu (one association per run, all files of a size class). Receiver: DCMTK
storescp with ``--ignore`` (receives every byte, writes none), so the numbers measure the
network path and not a disk. The gateway runs as its own process (``python -m
dicomguard.gateway``) with audit to a file on tmpfs, as it would in production. Instances are
synthetic (dicomguard.knowledge.synthetic, DGFAKE/DGSYN patients). Everything is on 127.0.0.1.

DCMTK as built by Debian leaves Nagle's algorithm on unless ``TCP_NODELAY=1`` is in its
environment, which costs ~40 ms of delayed-ACK stall per small instance; the benchmark sets it for
every DCMTK process and ``TCP_NODELAY`` for stunnel's sockets, so no mode wins by having it
(asyncio, hence the gateway, sets TCP_NODELAY itself). ``--nagle`` keeps DCMTK's default to show
that effect.

The last column is the relay process's CPU time per instance (from /proc; less noisy than the
ratios on a shared VM). Each cell of the table is the best of ``--repeat`` runs; the ratios
printed under it are the median over rounds of the ratio within a round (modes are
interleaved), which is what to quote:
the VM's speed drifts between rounds by more than the differences measured. A run's time
includes storescu's start and its reading of the files (identical in every mode), so ratios
slightly understate overheads.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from pydicom import dcmwrite

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dicomguard.knowledge.synthetic import instance_dataset, make_patients
from dicomguard.lab.tls import make_certificates
from dicomguard.testing.loopback import free_port, wait_until_accepting

HOST = "127.0.0.1"
STORESCU = "/usr/bin/storescu"
STORESCP = "/usr/bin/storescp"
STUNNEL = shutil.which("stunnel4") or "/usr/bin/stunnel4"
SOCAT = shutil.which("socat")
BUSY_POLL_US = 200
ENV = dict(os.environ, TCP_NODELAY="1")


def make_instances(directory: Path, count: int, rows: int, columns: int, tag: str) -> list[str]:
    """``count`` CT instances of ``rows`` x ``columns`` 16-bit pixels, written as files."""
    warnings.filterwarnings("ignore", module="pydicom")  # tag letters in UIDs: fine here
    patient = make_patients(11, 1)[0]
    study = patient.studies[0]
    base = instance_dataset(patient, study, rows=rows, columns=columns)
    paths = []
    for i in range(count):
        base.SOPInstanceUID = f"{study.study_instance_uid}.9.{ord(tag)}.{i}"
        base.file_meta.MediaStorageSOPInstanceUID = base.SOPInstanceUID
        path = directory / f"{tag}{i:05d}.dcm"
        dcmwrite(path, base, enforce_file_format=True)
        paths.append(str(path))
    return paths


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and of its children it has reaped (socat forks one per
    connection), from /proc: user + system, in seconds (10 ms resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


class Proc:
    """A child process in its own group, stopped with SIGTERM then SIGKILL."""

    def __init__(self, argv: list[str], log: Path, port: int) -> None:
        self.log = log
        with log.open("wb") as out:
            self.p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True,
                                      env=ENV)
        wait_until_accepting(HOST, port, timeout=20, alive=lambda: self.p.poll() is None)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)


def gateway_config(work: Path, backend_port: int, plain: int, tls: int, certs: object,
                   busy_poll_us: int = 0, name: str = "gateway") -> Path:
    cfg = work / f"{name}.toml"
    cfg.write_text(f"""
[[listen]]
address = "{HOST}"
port = {plain}

[[listen]]
address = "{HOST}"
port = {tls}
tls = true

[tls]
cert = "{certs.cert}"
key = "{certs.key}"

[sources]
allow = ["127.0.0.0/8"]

[[client]]
calling_aet = "BENCHSCU"
sources = ["127.0.0.0/8"]
identity = "modality"

[[route]]
called_aet = "PACS"
backend_host = "{HOST}"
backend_port = {backend_port}
backend_aet = "STORESCP"

[identity.modality]
operations = ["ECHO", "STORE"]

[audit]
file = "{work / f'{name}-audit.xml'}"

[limits]
max_pdu_bytes = 4194304
busy_poll_us = {busy_poll_us}
""")
    return cfg


def stunnel_config(work: Path, accept: int, backend_port: int, certs: object) -> Path:
    cfg = work / "stunnel.conf"
    cfg.write_text(f"""foreground = yes
pid =
debug = 3
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1
[dicom]
accept = {HOST}:{accept}
connect = {HOST}:{backend_port}
cert = {certs.cert}
key = {certs.key}
""")
    return cfg


def store(port: int, files: list[str], pdu: int, tls_args: list[str]) -> float:
    argv = [STORESCU, *tls_args, "-pdu", str(pdu), "-aet", "BENCHSCU", "-aec", "PACS",
            HOST, str(port), *files]
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=ENV)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"storescu failed on port {port}: {done.stderr[-1500:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=1500, help="number of ~10 KB instances")
    ap.add_argument("--large", type=int, default=40, help="number of ~5 MB instances")
    ap.add_argument("--pdu", type=int, default=131072, help="max PDU on both DCMTK ends")
    ap.add_argument("--repeat", type=int, default=7, help="runs per cell (best is kept)")
    ap.add_argument("--nagle", action="store_true",
                    help="leave DCMTK's default (Nagle on) instead of TCP_NODELAY=1")
    args = ap.parse_args(argv)
    if args.nagle:
        ENV.pop("TCP_NODELAY", None)

    tmp_root = "/dev/shm" if Path("/dev/shm").is_dir() else None
    work = Path(tempfile.mkdtemp(prefix="dg-bench-gw-", dir=tmp_root))
    procs: list[Proc] = []
    try:
        print(f"making instances in {work} ...", flush=True)
        classes = {
            "small": make_instances(work, args.small, 70, 70, "s"),  # ~10 KB
            "large": make_instances(work, args.large, 1600, 1600, "l"),  # ~5 MB
        }
        sizes = {k: sum(Path(f).stat().st_size for f in v) for k, v in classes.items()}
        certs = make_certificates(work / "tls", [HOST])
        tls_args = ["+tla", "+cf", str(certs.ca_cert)]

        backend_port = free_port(HOST)
        procs.append(Proc([STORESCP, "--ignore", "-pdu", str(args.pdu), "-aet", "STORESCP",
                           str(backend_port)], work / "storescp.log", backend_port))

        def start_gateway(name: str, busy_poll_us: int) -> tuple[Proc, int, int]:
            """A gateway process with a plain and a TLS listener; (process, plain, tls port)."""
            plain, tls = free_port(HOST), free_port(HOST)
            cfg = gateway_config(work, backend_port, plain, tls, certs, busy_poll_us, name)
            proc = Proc([sys.executable, "-m", "dicomguard.gateway", "--config", str(cfg)],
                        work / f"{name}.log", tls)
            procs.append(proc)
            wait_until_accepting(HOST, plain, timeout=10)
            return proc, plain, tls

        gateway, plain, tls = start_gateway("gateway", 0)
        busy_gateway, busy, busy_tls = start_gateway("busy", BUSY_POLL_US)
        stunnel_port = free_port(HOST)
        stunnel = Proc([STUNNEL, str(stunnel_config(work, stunnel_port, backend_port, certs))],
                       work / "stunnel.log", stunnel_port)
        procs.append(stunnel)

        # mode -> (port, storescu TLS options, the relay process whose CPU time is measured)
        modes: dict[str, tuple[int, list[str], Proc | None]] = {
            "direct": (backend_port, [], None),
            "gateway": (plain, [], gateway),
            "gateway+TLS": (tls, tls_args, gateway),
            "stunnel TLS": (stunnel_port, tls_args, stunnel),
            "gateway busy-poll": (busy, [], busy_gateway),
            "gateway+TLS busy-poll": (busy_tls, tls_args, busy_gateway),
        }
        if SOCAT:
            socat_port = free_port(HOST)
            socat = Proc([SOCAT, "-b", "262144",
                          f"TCP-LISTEN:{socat_port},bind={HOST},reuseaddr,fork,nodelay",
                          f"TCP:{HOST}:{backend_port},nodelay"],
                         work / "socat.log", socat_port)
            procs.append(socat)
            modes["socat relay"] = (socat_port, [], socat)
        else:
            print("socat not installed: no C relay reference row", file=sys.stderr)
        runs: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], float] = {}
        for cls, files in classes.items():
            for _ in range(args.repeat):  # interleave modes so drift hits all alike
                for mode, (port, targs, relay) in modes.items():
                    before = cpu_seconds(relay.p.pid) if relay else 0.0
                    t = store(port, files, args.pdu, targs)
                    if relay:
                        time.sleep(0.05)  # let socat's per-connection child be reaped
                        cpu[(cls, mode)] = (cpu.get((cls, mode), 0.0)
                                            + cpu_seconds(relay.p.pid) - before)
                    runs.setdefault((cls, mode), []).append(t)
        results = {key: min(times) for key, times in runs.items()}

        def ratio(cls: str, reference: str, mode: str) -> float:
            """Median over rounds of reference time / mode time, each pair from one round:
            on a shared VM the speed drifts between rounds, and a ratio within a round
            cancels that drift where best-of times do not."""
            pairs = zip(runs[(cls, reference)], runs[(cls, mode)], strict=True)
            return statistics.median(ref / t for ref, t in pairs)

        print()
        print(f"C-STORE throughput, storescu -> storescp --ignore, max PDU {args.pdu}, "
              f"best of {args.repeat}, TCP_NODELAY={'off' if args.nagle else 'on'}")
        head = (f"{'class':<7} {'mode':<21} {'files':>6} {'MB':>7} {'seconds':>8} "
                f"{'MB/s':>8} {'inst/s':>8} {'vs direct':>10} {'vs socat':>9} "
                f"{'vs stunnel':>10} {'relay CPU/inst':>15}")
        print(head)
        print("-" * len(head))
        for cls, files in classes.items():
            mb = sizes[cls] / 1e6
            direct = results[(cls, "direct")]
            stunnel = results[(cls, "stunnel TLS")]
            socat = results.get((cls, "socat relay"))
            for mode in modes:
                t = results[(cls, mode)]
                vs_socat = (f"{socat / t:8.0%}" if socat and "TLS" not in mode
                            and mode != "direct" else "")
                vs_stunnel = f"{stunnel / t:9.2f}x" if "TLS" in mode else ""
                relay_cpu = (f"{cpu[(cls, mode)] / (args.repeat * len(files)) * 1e6:12.0f} us"
                             if (cls, mode) in cpu else "")
                print(f"{cls:<7} {mode:<21} {len(files):>6} {mb:>7.1f} {t:>8.3f} "
                      f"{mb / t:>8.1f} {len(files) / t:>8.1f} {direct / t:>9.0%} "
                      f"{vs_socat:>9} {vs_stunnel:>10} {relay_cpu:>15}")
        print()
        print(f"Ratios, median over {args.repeat} rounds of the ratio within each round:")
        for cls in classes:
            line = (f"{cls}: plain gateway {ratio(cls, 'direct', 'gateway'):.0%} of direct "
                    f"(target >= 90%; busy-poll {ratio(cls, 'direct', 'gateway busy-poll'):.0%}")
            if (cls, "socat relay") in runs:
                line += (f"; socat relay {ratio(cls, 'direct', 'socat relay'):.0%}, the gateway "
                         f"{ratio(cls, 'socat relay', 'gateway'):.0%} of socat")
            tls = ratio(cls, "stunnel TLS", "gateway+TLS")
            busy_tls = ratio(cls, "stunnel TLS", "gateway+TLS busy-poll")
            print(line + f"), TLS gateway {tls:.2f}x stunnel (target >= 1.00x; "
                  f"busy-poll {busy_tls:.2f}x)")
        return 0
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    # storescp/Orthanc bind every interface: run in a loopback-only network namespace.
    from dicomguard.testing.netns import reexec_isolated

    reexec_isolated()
    sys.exit(main())
