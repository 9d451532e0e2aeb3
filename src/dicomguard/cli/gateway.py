"""``dicomguard gateway`` (also ``python -m dicomguard.gateway``): run the gateway, check a
config, or hash a passcode for it.

A configuration the gateway refuses (:class:`~dicomguard.gateway.config.ConfigError`, a TLS
profile the key cannot meet, files that do not load) is one line and exit status 2; a listener
that cannot bind is one line and exit status 1.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .common import UsageError

HELP = "run the secure gateway in front of a legacy device (dicomguard gateway -h)"
DESCRIPTION = (
    "Guard a legacy DICOM device: policy, TLS, identity and audit in front of it. SIGHUP "
    "reloads the config, SIGTERM stops gracefully. Every key and its default: the docstring "
    "of dicomguard.gateway.config. Among the [limits]: a source address that failed "
    "max_identity_failures_per_source (5) user identity checks in any "
    "identity_failure_window (60 s) is refused without a check (A-ASSOCIATE-RJ 2,3,2, "
    "transient) until the oldest is out of the window."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", type=Path,
                   help="gateway configuration (TOML, or YAML for .yaml/.yml)")
    p.add_argument("--check", action="store_true",
                   help="validate the configuration and exit (0 = good)")
    p.add_argument("--hash-passcode", action="store_true",
                   help="read a passcode (stdin or prompt) and print its hash for [[user]]")
    p.add_argument("--method", choices=("scrypt", "pbkdf2_sha256"), default="scrypt",
                   help="hash method for --hash-passcode")
    p.add_argument("-v", "--verbose", action="store_true", help="log at debug level")


def configure_logging(args: argparse.Namespace) -> None:
    """The gateway logs at info level (debug with -v), timestamped: it is a service."""
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


def run(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    """Hash a passcode, check a configuration, or serve until SIGTERM; the exit status."""
    import asyncio

    # imported here: the gateway's parts (JWT, YAML) cost start-up other commands need not pay
    from ..gateway.auth import hash_passcode
    from ..gateway.config import ConfigError, load_config

    if args.hash_passcode:
        if sys.stdin.isatty():
            passcode = getpass.getpass("passcode: ")
        else:
            passcode = sys.stdin.readline().rstrip("\n")
        if not passcode:
            raise UsageError("empty passcode")
        print(hash_passcode(passcode, method=args.method))
        return 0
    if args.config is None:
        raise UsageError("gateway: --config FILE is required")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise UsageError(f"gateway configuration: {exc}") from None
    if config.tls is not None:
        import ssl

        from ..gateway.tls import server_context

        try:  # the profile against the key, and files that exist but do not load
            server_context(config.tls)
        except (ConfigError, ssl.SSLError, OSError) as exc:
            raise UsageError(f"gateway configuration: tls: {exc}") from None
    if args.check:
        print(f"{args.config}: ok ({len(config.listeners)} listeners, "
              f"{len(config.routes)} routes, {len(config.identities)} identities)")
        return 0
    from ..gateway.busypoll import event_loop
    from ..gateway.server import Gateway  # imported late: --check and --hash-passcode stay light

    async def serve() -> None:
        await Gateway(config, args.config).serve_forever()

    # A reload cannot switch busy polling on or off: the event loop is chosen at start.
    try:
        with asyncio.Runner(loop_factory=lambda: event_loop(config.limits.busy_poll_us)) as r:
            r.run(serve())
    except OSError as exc:
        print(f"dicomguard: error: gateway: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dicomguard.gateway ARGS``: the same as ``dicomguard gateway ARGS``."""
    from . import main as dicomguard_main

    return dicomguard_main(["gateway", *(sys.argv[1:] if argv is None else argv)])
