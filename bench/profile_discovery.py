"""CPU per association of ``dicomguard scan --discovery`` on the all-DICOM workload (issue 13).

Measures what issue 13's target is written in: user + system CPU of the scan process and every
child it reaped (``wait4``, the kernel accounting ``/proc/<pid>/stat`` shows), minus the CPU of
a scan of one closed port (dicomguard's start-up: imports, fingerprint and findings data,
store), divided by the associations (one per address). Wall time is not reported as a result:
on a shared machine it is noise; CPU time is what the scanner's own code costs.

Workloads (the servers of ``bench_scan.py``'s all-DICOM part, started once per invocation):

* ``orthanc``: one real Orthanc 1.10.1 (preset ``open``) answering every address of
  127.1.0.0/20 on one port (4,096 associations);
* ``fleet``: a lab fleet of 2,047 ``open`` servers (127.44.0.0/21, one port).

    python bench/profile_discovery.py [--workload orthanc|fleet|both] [--runs 3]
        [--workers auto|1|2] [--profile OUT.pstats] [--concurrency N] [--baseline-src DIR]

``--baseline-src DIR`` (e.g. ``git archive main src | tar -x -C /tmp/base`` then
``/tmp/base/src``) measures that package too, each run right after the other, so a change is
compared with its baseline under the same load.

``--py-spy OUT.txt`` samples one scan (``--workers 1``) with py-spy (``pip install py-spy``;
no tracing overhead) and prints the functions by share of samples. ``--profile`` runs the
scan in this process under cProfile (``--workers 1``) once per workload and writes the
statistics (``OUT.pstats`` with the workload's name in front of the suffix), then prints the
top entries by cumulative and by own time. Everything targets 127.0.0.0/8
only; the script re-executes itself in a loopback-only network namespace (Orthanc binds every
interface). Run it at low priority on a shared machine: ``nice -n 10``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import ipaddress
import os
import pstats
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_scan as B  # the benchmark's runner, lab start-up and CPU accounting

ORTHANC_TARGETS = "127.1.0.0/20"
#: where the lab lives (bench_scan.py's default), and the /21 of it scanned: 2,047 servers
FLEET_NETWORK = "127.44.0.0/20"
FLEET_TARGETS = "127.44.0.0/21"
FLEET_PORT = 11112


@contextlib.contextmanager
def workload(name: str) -> Iterator[tuple[str, int]]:
    """Start the servers of one workload; yields (targets, port)."""
    if name == "orthanc":
        from dicomguard.testing.base import default_patients
        from dicomguard.testing.orthanc import OrthancServer

        with OrthancServer("127.0.0.1", patients=default_patients(1, 3)) as orthanc:
            yield ORTHANC_TARGETS, orthanc.port
        return
    net = ipaddress.ip_network(FLEET_TARGETS)
    servers = net.num_addresses - 1  # hosts are numbered from .1: the network address is closed
    lab = B.start_lab(FLEET_NETWORK, ["open"] * servers, str(FLEET_PORT), ("--max-patients", "3"))
    try:
        yield FLEET_TARGETS, FLEET_PORT
    finally:
        lab.terminate()
        lab.wait(10)


@contextlib.contextmanager
def source(src: Path | None) -> Iterator[None]:
    """Run the scans with the package in ``src`` (a checkout's ``src``: the baseline of an
    A/B comparison) instead of the installed one."""
    if src is None:
        yield
        return
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(src)
    try:
        yield
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old


def startup(tmp: Path) -> float:
    """Median CPU seconds of three scans of one closed port."""
    runs = []
    for _ in range(3):
        (tmp / "startup.db").unlink(missing_ok=True)
        runs.append(B.startup_cpu(tmp))
    return statistics.median(runs)


def measure(targets: str, port: int, tmp: Path, workers: str, extra: list[str]) -> B.Run:
    out, db = tmp / "disc.jsonl", tmp / "disc.db"
    out.unlink(missing_ok=True)
    db.unlink(missing_ok=True)
    r = B.run(B.scan_argv(targets, port, out, db, workers, "--discovery", *extra))
    r.out = str(B.count_jsonl(out))  # DICOM endpoints found
    return r


def profile(targets: str, port: int, tmp: Path, dest: Path, extra: list[str]) -> None:
    """The scan in this process (one worker) under cProfile; statistics to ``dest``."""
    from dicomguard.cli import main as cli_main

    out, db = tmp / "prof.jsonl", tmp / "prof.db"
    out.unlink(missing_ok=True)
    db.unlink(missing_ok=True)
    argv = B.scan_argv(targets, port, out, db, "1", "--discovery", *extra)[len(B.dicomguard()):]
    prof = cProfile.Profile()
    prof.enable()
    with contextlib.suppress(SystemExit):
        cli_main(argv)
    prof.disable()
    prof.dump_stats(str(dest))
    stats = pstats.Stats(str(dest))
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(45)


def sample(targets: str, port: int, tmp: Path, dest: Path, extra: list[str]) -> None:
    """The scan (one worker) sampled by py-spy (no tracing overhead, unlike cProfile):
    collapsed stacks to ``dest``, then the functions by share of samples, inclusive and
    own."""
    out, db = tmp / "spy.jsonl", tmp / "spy.db"
    out.unlink(missing_ok=True)
    db.unlink(missing_ok=True)
    argv = B.scan_argv(targets, port, out, db, "1", "--discovery", *extra)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    B.run([spy, "record", "--format", "raw", "--rate", "400", "-o", str(dest), "--", *argv])
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in dest.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = [f.split(" (")[0] + " " + f.rsplit("/", 1)[-1].rstrip(")")
                  for f in stack.split(";")]
        for f in set(frames):
            inclusive[f] = inclusive.get(f, 0) + n
        own[frames[-1]] = own.get(frames[-1], 0) + n
    for title, table in (("inclusive", inclusive), ("own", own)):
        print(f"\n{title} (share of {total} samples):")
        for f, n in sorted(table.items(), key=lambda kv: -kv[1])[:50]:
            print(f"  {100 * n / total:5.1f} %  {f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", choices=("orthanc", "fleet", "both"), default="both")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", default="auto", help="dicomguard --workers (default auto)")
    ap.add_argument("--concurrency", type=int, default=0, help="dicomguard --concurrency")
    ap.add_argument("--profile", type=Path, help="cProfile one in-process scan per workload")
    ap.add_argument("--py-spy", type=Path, help="sample one scan per workload with py-spy")
    ap.add_argument(
        "--baseline-src",
        type=Path,
        help="also measure the package in this src folder, runs interleaved (A/B on a shared "
        "machine: drift hits both alike)",
    )
    args = ap.parse_args()
    extra = ["--concurrency", str(args.concurrency)] if args.concurrency else []
    tmp = Path(tempfile.mkdtemp(prefix="dg-prof-"))
    variants: list[tuple[str, Path | None]] = [("this", None)]
    if args.baseline_src:
        variants.insert(0, ("baseline", args.baseline_src.resolve()))
    try:
        startups = {}
        for label, src in variants:
            with source(src):
                startups[label] = startup(tmp)
            print(f"{label}: start-up CPU (one closed port, median of 3): "
                  f"{startups[label]:.3f} s")
        names = ("orthanc", "fleet") if args.workload == "both" else (args.workload,)
        for name in names:
            with workload(name) as (targets, port):
                n = ipaddress.ip_network(targets).num_addresses
                if args.py_spy:
                    dest = args.py_spy.with_name(f"{name}-{args.py_spy.name}")
                    sample(targets, port, tmp, dest, extra)
                    continue
                if args.profile:
                    dest = args.profile.with_name(f"{name}-{args.profile.name}")
                    profile(targets, port, tmp, dest, extra)
                    print(f"profile written to {dest}")
                    continue
                per: dict[str, list[float]] = {label: [] for label, _ in variants}
                for i in range(args.runs):
                    for label, src in variants:
                        with source(src):
                            r = measure(targets, port, tmp, args.workers, extra)
                        ms = (r.cpu - startups[label]) / n * 1000
                        per[label].append(ms)
                        print(f"{name} {label} run {i + 1}: {n} endpoints, {r.out} DICOM, "
                              f"CPU {r.cpu:.2f} s, {r.cpu / n * 1000:.3f} ms/assoc, "
                              f"{ms:.3f} ms/assoc w/o start-up (wall {r.secs:.2f} s)")
                for label, values in per.items():
                    print(f"{name} {label}: median {statistics.median(values):.3f} ms/assoc "
                          "w/o start-up")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    # Orthanc binds every interface: run in a loopback-only network namespace.
    from dicomguard.testing.netns import reexec_isolated

    reexec_isolated()
    raise SystemExit(main())
