"""``dicomguard lab`` (also ``python -m dicomguard.lab``): run the simulated fleet on loopback.

Flags become the arguments of :func:`dicomguard.lab.fleet.run_fleet`; a plan the lab refuses
(a network outside loopback, unknown personas) is one line and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .common import UsageError

if TYPE_CHECKING:
    from ..lab.fleet import Fleet


def _ports(text: str) -> tuple[int, ...]:
    try:
        ports = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port list: {text!r}") from None
    if not ports or any(not 1 <= p <= 65535 for p in ports):
        raise argparse.ArgumentTypeError(f"ports must be 1..65535: {text!r}")
    return ports


def _check_truth_writable(path: str) -> None:
    """UsageError unless the ground truth can be written where asked (as ``write_truth`` does:
    a ``.tmp`` beside it, then renamed), before any server starts."""
    from pathlib import Path

    target = Path(path)
    if target.is_dir():
        raise UsageError(f"--truth {path}: is a folder, not a file")
    tmp = target.with_name(target.name + ".tmp")
    try:
        with open(tmp, "a"):
            pass
        tmp.unlink()
    except OSError as exc:
        raise UsageError(f"--truth {path}: cannot write ({exc.strerror})") from None


HELP = "run the simulated DICOM fleet (options: dicomguard lab -h)"
DESCRIPTION = "Run a fleet of simulated DICOM servers on loopback, with ground truth."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # imported here: the lab (pynetdicom) costs ~0.15 s of start-up other commands need not pay
    from ..lab.fleet import DEFAULT_CLI_SIZE, DEFAULT_NETWORK, DEFAULT_PORTS
    from ..lab.personas import DEFAULT_FIND_CAP, DEFAULT_SLOW_DELAY, DEFAULT_SLOW_GREETING
    from .scan import bounded

    parser.add_argument(
        "--network",
        default=DEFAULT_NETWORK,
        help=f"loopback CIDR the hosts live in (default {DEFAULT_NETWORK})",
    )
    parser.add_argument(
        "--size",
        type=int,
        help="number of hosts: one of each persona, then a mix (default "
        f"{DEFAULT_CLI_SIZE}, or exactly the --persona list when one is given)",
    )
    parser.add_argument(
        "--ports",
        type=_ports,
        default=DEFAULT_PORTS,
        help="comma-separated ports every host listens on (default 11112; tls-only adds 2762)",
    )
    parser.add_argument(
        "--persona",
        action="append",
        dest="personas",
        metavar="NAME",
        help="explicit persona per host, in order (repeatable)",
    )
    parser.add_argument("--truth", metavar="FILE", help="write the ground truth JSON here")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument(
        "--duration",
        type=bounded(float, 0, 1e7, what="seconds"),
        metavar="SECONDS",
        help="stop by itself after this long (default: until Ctrl-C/SIGTERM)",
    )
    parser.add_argument(
        "--slow-delay",
        type=bounded(float, 0, 3600, what="seconds"),
        default=DEFAULT_SLOW_DELAY,
        help=f"answer delay of 'slow' hosts (default {DEFAULT_SLOW_DELAY}s)",
    )
    parser.add_argument(
        "--slow-greeting",
        type=bounded(float, 0, 3600, what="seconds"),
        default=DEFAULT_SLOW_GREETING,
        metavar="SECONDS",
        help="answer delay of 'slow-greeting' hosts, past a scanner's first associate timeout"
        f" (default {DEFAULT_SLOW_GREETING:g}s)",
    )
    parser.add_argument(
        "--find-cap",
        type=bounded(int, 1, 1_000_000),
        default=DEFAULT_FIND_CAP,
        help=f"C-FIND cap of the capped personas (default {DEFAULT_FIND_CAP})",
    )
    parser.add_argument(
        "--max-patients",
        type=bounded(int, 1, 1_000_000),
        metavar="N",
        help="upper bound of synthetic patients per host (default: 200; capped hosts keep more)",
    )
    parser.add_argument(
        "--list-personas", action="store_true", help="print the persona catalogue and exit"
    )




def run(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    """Run the fleet until Ctrl-C/SIGTERM or ``--duration``; returns the exit status."""
    import asyncio

    from ..lab.fleet import DEFAULT_CLI_SIZE, LabError, plan_fleet, run_fleet
    from ..lab.personas import PERSONA_ORDER, PERSONAS

    if args.list_personas:
        for name in PERSONA_ORDER:
            print(f"{name:24} {PERSONAS[name].description}")
        return 0
    if args.size is None and not args.personas:
        args.size = DEFAULT_CLI_SIZE
    try:
        plan_fleet(args.network, args.personas, size=args.size, ports=args.ports, seed=args.seed)
    except LabError as exc:
        raise UsageError(str(exc)) from None
    if args.truth:
        _check_truth_writable(args.truth)

    def ready(fleet: Fleet) -> None:
        where = f"; truth in {args.truth}" if args.truth else ""
        print(
            f"dicomguard lab: {len(fleet.plan)} hosts, {len(fleet.endpoints())} endpoints on "
            f"{args.network} (seed {args.seed}){where}. Ctrl-C to stop.",
            flush=True,
        )

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await run_fleet(
            args.network,
            args.personas,
            size=args.size,
            ports=args.ports,
            seed=args.seed,
            truth_path=args.truth,
            duration=args.duration,
            stop=stop,
            slow_delay=args.slow_delay,
            slow_greeting_delay=args.slow_greeting,
            find_cap=args.find_cap,
            max_patients=args.max_patients,
            ready=ready,
        )

    try:
        asyncio.run(runner())
    except LabError as exc:
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt:
        pass
    print("dicomguard lab: stopped", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dicomguard.lab ARGS``: the same as ``dicomguard lab ARGS``."""
    import sys

    from . import main as dicomguard_main

    return dicomguard_main(["lab", *(sys.argv[1:] if argv is None else argv)])
