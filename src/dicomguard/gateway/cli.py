"""``dicomguard gateway``: run the gateway, check a config, or hash a passcode for it.

``main(argv)`` is what ``dicomguard.cli`` calls for the ``gateway`` subcommand (argv without the
subcommand itself); ``python -m dicomguard.gateway`` runs it directly.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .auth import hash_passcode
from .config import ConfigError, load_config


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dicomguard gateway",
        description="Guard a legacy DICOM device: policy, TLS, identity and audit in front of "
        "it. SIGHUP reloads the config, SIGTERM stops gracefully.",
    )
    p.add_argument("--config", "-c", type=Path,
                   help="gateway configuration (TOML, or YAML for .yaml/.yml)")
    p.add_argument("--check", action="store_true",
                   help="validate the configuration and exit (0 = good)")
    p.add_argument("--hash-passcode", action="store_true",
                   help="read a passcode (stdin or prompt) and print its hash for [[user]]")
    p.add_argument("--method", choices=("scrypt", "pbkdf2_sha256"), default="scrypt",
                   help="hash method for --hash-passcode")
    p.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.hash_passcode:
        if sys.stdin.isatty():
            passcode = getpass.getpass("passcode: ")
        else:
            passcode = sys.stdin.readline().rstrip("\n")
        if not passcode:
            print("empty passcode", file=sys.stderr)
            return 2
        print(hash_passcode(passcode, method=args.method))
        return 0
    if args.config is None:
        print("dicomguard gateway: --config FILE is required", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"dicomguard gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    if config.tls is not None:
        import ssl

        from .tls import server_context

        try:  # the profile against the key, and files that exist but do not load
            server_context(config.tls)
        except (ConfigError, ssl.SSLError, OSError) as exc:
            print(f"dicomguard gateway: configuration error: tls: {exc}", file=sys.stderr)
            return 2
    if args.check:
        print(f"{args.config}: ok ({len(config.listeners)} listeners, "
              f"{len(config.routes)} routes, {len(config.identities)} identities)")
        return 0
    from .busypoll import event_loop
    from .server import Gateway  # imported late: --check and --hash-passcode stay light

    async def run() -> None:
        await Gateway(config, args.config).serve_forever()

    # A reload cannot switch busy polling on or off: the event loop is chosen at start.
    try:
        with asyncio.Runner(loop_factory=lambda: event_loop(config.limits.busy_poll_us)) as r:
            r.run(run())
    except OSError as exc:
        print(f"dicomguard gateway: {exc}", file=sys.stderr)
        return 1
    return 0
