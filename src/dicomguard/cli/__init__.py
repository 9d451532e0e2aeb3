"""The ``dicomguard`` command: one parser, one module per command, one way to fail.

argparse rather than click because the nmap-style options (``-iL``, ``-p``) are single-dash
multi-letter flags that argparse handles natively.

Each command is a module here with the same shape (see :mod:`.common`): ``HELP`` (and
optionally ``DESCRIPTION``), ``add_arguments(parser)`` and ``run(args, argv) -> int`` (and
optionally ``configure_logging(args)``; the default is debug logging with ``-v``). A module
imports the part it drives inside its functions, so ``dicomguard scan`` never loads the gateway.
``main`` parses, dispatches and turns :class:`~.common.UsageError` into one line and exit
status 2. ``python -m dicomguard.gateway``
and ``python -m dicomguard.lab`` call ``main`` with their command name in front.
"""

from __future__ import annotations

import argparse
import logging
import sys
from types import ModuleType

from .. import __version__
from ..runner.session import ScanInterrupted
from . import demo, diff, gateway, lab, merge, report, scan
from .common import Parser, UsageError

__all__ = ["COMMANDS", "UsageError", "build_parser", "main"]

#: every command, in the order ``dicomguard -h`` lists them
COMMANDS: dict[str, ModuleType] = {
    "scan": scan,
    "lab": lab,
    "gateway": gateway,
    "demo": demo,
    "report": report,
    "merge": merge,
    "diff": diff,
}


def build_parser(command: str | None = None) -> Parser:
    """The ``dicomguard`` parser; with ``command``, only that command's flags are declared
    (the others are listed by name and help: what ``main`` needs, and it keeps the start-up of
    one command free of every other's imports)."""
    parser = Parser(
        prog="dicomguard",
        description="Find exposed DICOM services, measure what they leak, guard legacy devices.",
    )
    parser.add_argument("--version", action="version", version=f"dicomguard {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", None))
        if command is None or command == name:
            module.add_arguments(p)
    return parser


def _command_in(argv: list[str]) -> str | None:
    """The command ``argv`` names: its first word not an option (the top-level options take no
    value); None if there is none (argparse then says what is missing)."""
    return next((a for a in argv if not a.startswith("-")), None)


def _configure_logging(args: argparse.Namespace) -> None:
    """``-v``: debug logging; a command may define its own ``configure_logging(args)``."""
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dicomguard`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # silence pynetdicom's per-association log lines; our own summary says what matters
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    args = build_parser(_command_in(argv)).parse_args(argv)
    command = COMMANDS[args.command]
    getattr(command, "configure_logging", _configure_logging)(args)
    try:
        return command.run(args, argv)
    except UsageError as exc:
        print(f"dicomguard: error: {exc}", file=sys.stderr)
        return 2
    except ScanInterrupted as exc:
        what = "interrupted" if exc.failure is None else f"error: {exc.failure}"
        print(
            f"dicomguard: {what}; finished endpoints are in {exc.db}; continue with:\n"
            f"  {exc.resume_command()}",
            file=sys.stderr,
        )
        return 130 if exc.failure is None else 1
    except KeyboardInterrupt:
        print("dicomguard: interrupted", file=sys.stderr)
        return 130
