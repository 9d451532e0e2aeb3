"""What every test server tells a test, and the subprocess plumbing the binary-backed ones share.

A test asks a launcher where it listens, which AE titles it accepts and what a correct scan of it
must report (:attr:`LoopbackServer.expected`). The expectations are measured facts about the real
server software (see ``testing/tests``), not wishes: if a new Orthanc behaves differently, those
tests fail before any scanner test is misled.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from dicomguard.dul.codes import REJECT_CALLED_AET, REJECT_CALLING_AET
from dicomguard.knowledge.synthetic import (
    GroundTruth,
    SyntheticPatient,
    ground_truth,
    make_patients,
)
from dicomguard.testing.guard import NotIsolatedError, assert_isolated, assert_loopback
from dicomguard.testing.loopback import free_port, wait_until_accepting

#: Keys of :attr:`LoopbackServer.expected`, in the order a report would list them.
EXPECTATION_KEYS = (
    "called_aet_enforced",
    "calling_aet_enforced",
    "verification",
    "find_patient_root",
    "find_study_root",
    "move",
    "get",
    "worklist",
    "storage",
)

#: A-ASSOCIATE-RJ reasons (PS3.8 9.3.4, source service user) the servers use.
REASON_CALLING_AET = REJECT_CALLING_AET.reason
REASON_CALLED_AET = REJECT_CALLED_AET.reason

#: Where Debian puts the binaries. Looked up first because a Python "storescp" shim (pynetdicom
#: apps under pyenv) can shadow DCMTK's on PATH.
_SYSTEM_BIN_DIRS = ("/usr/bin", "/usr/sbin", "/usr/local/bin")


def find_binary(name: str) -> str | None:
    """Absolute path of a system binary ``name``, or None when it is not installed."""
    for d in _SYSTEM_BIN_DIRS:
        path = Path(d) / name
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return shutil.which(name)


class ServerStartError(RuntimeError):
    """A server did not come up; the message carries the tail of its log."""


class LoopbackServer:
    """A DICOM server on one loopback address, usable as a context manager.

    Attributes a test reads:
      host, port        where the DICOM service listens (the address to scan)
      called_aets       AE titles it answers to (any title works when ``expected`` says the
                        called AE is not enforced)
      calling_aets      calling AE titles it lets in; empty tuple = anyone
      services          names from :data:`EXPECTATION_KEYS` whose value is true
      patients          the synthetic patients loaded into it
      ground_truth      what a complete query would reveal about them
      expected          measured truth a scan must report (see :data:`EXPECTATION_KEYS`)
      reject_reasons    A-ASSOCIATE-RJ reason per failed check, e.g. {"called_aet": 7}
    """

    kind = "server"

    def __init__(
        self,
        host: str,
        port: int | None,
        *,
        called_aets: Sequence[str],
        calling_aets: Sequence[str] = (),
        patients: Sequence[SyntheticPatient] | None = None,
        expected: dict[str, bool],
        reject_reasons: dict[str, int] | None = None,
    ) -> None:
        self.host = assert_loopback(host)
        self._fixed_port = port
        self.port = port or 0
        self.called_aets = tuple(called_aets)
        self.calling_aets = tuple(calling_aets)
        self.patients: list[SyntheticPatient] = list(patients or [])
        self.ground_truth: GroundTruth = ground_truth(self.patients)
        missing = set(EXPECTATION_KEYS) - expected.keys()
        if missing:
            raise ValueError(f"expected lacks {sorted(missing)}")
        self.expected = dict(expected)
        self.reject_reasons = dict(reject_reasons or {})

    @property
    def aet(self) -> str:
        """The main called AE title (the one to use when you want to get in)."""
        return self.called_aets[0]

    @property
    def services(self) -> frozenset[str]:
        """Offered services (expectation keys other than the two AE checks that are true)."""
        return frozenset(k for k in EXPECTATION_KEYS[2:] if self.expected[k])

    def start(self) -> Self:
        """Start, wait until it accepts, load data. Retries on a new port if the port was taken."""
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            self.port = self._fixed_port or free_port(self.host)
            try:
                self._start()
                return self
            except ServerStartError:
                self.stop()
                if attempt == attempts - 1:
                    raise
        return self  # pragma: no cover - loop always returns or raises

    def stop(self) -> None:
        """Stop and clean up; safe to call twice."""
        self._stop()

    def _start(self) -> None:
        raise NotImplementedError

    def _stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.aet}@{self.host}:{self.port}>"


def default_patients(seed: int, n: int = 12) -> list[SyntheticPatient]:
    """The synthetic patients a launcher loads unless told otherwise."""
    return make_patients(seed, n)


class ProcessServer(LoopbackServer):
    """A server that is a child process with its own temp dir and log file.

    The child runs in its own session (process group) so that stopping it also ends the
    per-association children that forking servers (dcmqrscp, storescp --fork) leave behind.
    """

    startup_timeout = 20.0
    #: Orthanc 1.10.1 and DCMTK 3.6.7 cannot bind one address: they listen on every interface,
    #: so they only start inside a loopback-only network namespace (``testing/netns.py``).
    binds_all_interfaces = True

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Path | None = None

    @property
    def workdir(self) -> Path:
        """The server's private temp dir (config, storage, log)."""
        if self._tmp is None:
            raise RuntimeError("server not started")
        return Path(self._tmp.name)

    def log_tail(self, lines: int = 30) -> str:
        """Last lines of the server's log, for failure messages."""
        if self._log_file is None or not self._log_file.exists():
            return ""
        text = self._log_file.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def _new_workdir(self) -> Path:
        self._tmp = tempfile.TemporaryDirectory(prefix=f"dg-{self.kind}-")
        return Path(self._tmp.name)

    def _spawn(self, argv: list[str], *, cwd: Path, wait_ports: Sequence[int]) -> None:
        """Run ``argv`` in its own session, then wait until every port in ``wait_ports`` accepts."""
        if self.binds_all_interfaces:
            try:
                assert_isolated(f"{self!r}")
            except NotIsolatedError as e:
                raise ServerStartError(str(e)) from e
        self._log_file = cwd / "server.log"
        with self._log_file.open("wb") as log:
            self._proc = subprocess.Popen(
                argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = self._proc
        try:
            for port in wait_ports:
                wait_until_accepting(
                    self.host,
                    port,
                    timeout=self.startup_timeout,
                    alive=lambda: proc.poll() is None,
                )
        except (RuntimeError, TimeoutError) as e:
            raise ServerStartError(f"{self!r}: {e}\n{self.log_tail()}") from e

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            self._terminate(proc)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @staticmethod
    def _terminate(proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM the child's process group, SIGKILL it if it lingers. Only our own group."""
        try:
            pgid = os.getpgid(proc.pid)
        except ProcessLookupError:
            pgid = None
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            if pgid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, sig)
            try:
                proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        if pgid is not None:
            # Forked association children may outlive the parent; the group id is still ours.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
