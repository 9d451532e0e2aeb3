"""Run a command in a private network namespace that holds only loopback.

Some real servers the tests and benchmarks start cannot bind one address (Orthanc 1.10.1 and
DCMTK 3.6.7 listen on every interface). The project's rule is that nothing it runs may be
reachable from, or send to, any address but loopback. Inside a fresh network namespace the only
interface is ``lo``, so "every interface" *is* loopback and no packet can leave the machine.

``python -m dicomguard.testing.netns CMD ARGS...`` creates the namespace (``unshare --net``,
with ``--map-root-user`` when not root), brings ``lo`` up and runs CMD in it. ``scripts/test``
runs pytest this way; the benchmarks re-exec themselves through :func:`reexec_isolated`.
Launchers of all-interface servers call :func:`dicomguard.testing.guard.assert_isolated` and
refuse to start elsewhere; the checks themselves live in :mod:`dicomguard.testing.guard`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from typing import NoReturn

from dicomguard.testing.guard import NotIsolatedError, interfaces, is_isolated

#: First argument of the module when it already runs inside the new namespace.
_INSIDE = "--inside-new-netns"

#: Set in the environment of the command run inside the namespace.
ENV_FLAG = "DICOMGUARD_ISOLATED_NETNS"


def unshare_argv(argv: Sequence[str]) -> list[str]:
    """The command line that runs ``argv`` inside a new loopback-only namespace."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise NotIsolatedError("unshare (util-linux) is not installed")
    flags = ["--net"] if os.geteuid() == 0 else ["--net", "--map-root-user"]
    return [unshare, *flags, "--", sys.executable, "-m", "dicomguard.testing.netns", _INSIDE, *argv]


def reexec_isolated() -> None:
    """Re-run the current script inside a new namespace unless already isolated."""
    if is_isolated():
        return
    argv = unshare_argv([sys.executable, *sys.argv])
    os.execv(argv[0], argv)


def _bring_up_loopback() -> None:
    ip = shutil.which("ip") or "/usr/sbin/ip"
    subprocess.run([ip, "link", "set", "lo", "up"], check=True)


def main(argv: Sequence[str]) -> NoReturn:
    """Run ``argv`` in a new namespace: unshare, then (inside) bring ``lo`` up, check, exec."""
    argv = list(argv)
    inside = bool(argv) and argv[0] == _INSIDE
    if inside:
        argv = argv[1:]
    if not argv:
        print("usage: python -m dicomguard.testing.netns CMD [ARGS...]", file=sys.stderr)
        raise SystemExit(2)
    if not inside:
        try:
            outer = unshare_argv(argv)
        except NotIsolatedError as e:
            print(f"netns: {e}", file=sys.stderr)
            raise SystemExit(1) from None
        os.execv(outer[0], outer)
    _bring_up_loopback()
    if not is_isolated():
        print(f"netns: not isolated (interfaces: {interfaces()})", file=sys.stderr)
        raise SystemExit(1)
    os.environ[ENV_FLAG] = "1"
    os.execvp(argv[0], list(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
