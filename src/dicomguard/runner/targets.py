"""A request's targets: expanded, checked, sharded, with every left-out name or address said.

Names typed on the command line are looked up up front (each failure reported on stderr, one
line each); names read from files only with ``resolve_names``. Addresses that are never a
server's are left out and counted; a request of only those is an error, not an empty scan.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from ..scan.request import ScanRequest
from .errors import ScanSetupError

__all__ = ["resolve_shard", "scan_targets"]


def resolve_shard(request: ScanRequest) -> ScanRequest:
    """``shard`` "auto" (or any K/N spelling) as "K/N": a resumed shard stays the same shard.
    Raises ScanSetupError for a spec or environment that names no shard."""
    if not request.shard:
        return request
    from ..scan.shard import ShardError, parse_shard

    try:
        k, n = parse_shard(request.shard)
    except ShardError as exc:
        raise ScanSetupError(str(exc)) from None
    return dataclasses.replace(request, shard=f"{k}/{n}")


def scan_targets(request: ScanRequest) -> tuple[Any, tuple[int, ...]]:
    """(TargetSet of this shard, web ports); unresolvable names and left-out addresses are
    reported on stderr, one line each."""
    from ..scan.targets import DEFAULT_PORTS, TargetError, build_targets, parse_ports, resolve_names
    from ..scan.web import DEFAULT_WEB_PORTS

    try:
        ports = parse_ports(request.ports) if request.ports else DEFAULT_PORTS
        web_ports: tuple[int, ...] = ()
        if not request.no_web and not request.discovery:
            # an explicit -p is all the user wants probed, unless web ports are named too
            if request.web_ports:
                web_ports = parse_ports(request.web_ports)
            elif not request.ports:
                web_ports = DEFAULT_WEB_PORTS
        ports = tuple(dict.fromkeys([*ports, *web_ports]))  # the same hosts, web ports too
        targets = build_targets(
            request.targets,
            ports=ports,
            input_files=[v if v == "-" else Path(v) for v in request.input_files],
            excludes=request.exclude,
            exclude_files=[Path(v) for v in request.exclude_file],
            # names typed on the command line are looked up up front (each failure
            # reported); names read from files only with resolve_names
            resolve_file_names=request.resolve_names,
            resolver=resolve_names,
        )
    except TargetError as exc:
        raise ScanSetupError(str(exc)) from None
    except OSError as exc:
        raise ScanSetupError(f"cannot read {exc.filename}: {exc.strerror}") from None
    for u in targets.unresolved:
        print(f"dicomguard: cannot resolve {u.name!r} ({u.origin}): {u.reason}", file=sys.stderr)
    if targets.unresolved:
        print(
            f"dicomguard: {len(targets.unresolved)} name(s) could not be resolved and are not "
            "scanned",
            file=sys.stderr,
        )
    never = getattr(targets, "never_servers", 0)
    if never:
        print(
            f"dicomguard: {never:,} address(es) left out: never a server's (0.0.0.0/8, "
            "multicast 224.0.0.0/4, reserved 240.0.0.0/4; RFC 6890)",
            file=sys.stderr,
        )
        if targets.count() == 0:
            # nothing else was asked for: an empty scan with exit 0 would hide the mistake
            raise ScanSetupError(
                f"no targets left: all {never:,} address(es) asked for are never a server's "
                "(0.0.0.0/8, 224.0.0.0/4, 240.0.0.0/4)"
            )
    if request.geoip:  # a bad database fails before the scan database exists
        from ..geoip import GeoIP, GeoIPError

        try:
            GeoIP([Path(g) for g in request.geoip]).close()
        except GeoIPError as exc:
            raise ScanSetupError(str(exc)) from None
    if request.shard:
        from ..scan.shard import ShardError, parse_shard

        try:
            k, n = parse_shard(request.shard)
        except ShardError as exc:
            raise ScanSetupError(str(exc)) from None
        targets = targets.shard(k, n)
    return targets, web_ports
