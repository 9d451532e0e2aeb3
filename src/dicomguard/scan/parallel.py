"""Run one scan on several CPU cores: each worker process scans a shard of the target indices.

A single Python process tops out at roughly 30 thousand probes per second, most of it spent in
the interpreter, not in the kernel. Forked workers each run an ordinary :class:`Engine` on the
hosts with ``engine.shard_of(host, n) == k`` and stream their results back; the parent stays
the only writer of the store, so resume bookkeeping is exactly that of a single-process scan.

Sharded by host, not by target index (issue 12): all ports of one host land in one worker, so
``--per-host`` holds across workers and the link between two ports fronting one archive
(exposure.ArchiveCache) is seen by the process that counts it. Each worker gets ``rate / n``,
so the sum holds the ``--rate`` promise (ratelimit.py) in every second.

Each worker has its own congestion windows (scan.congestion); what they share is the count of
answers per congestion group (congestion.Answers, in shared memory made before the fork): an
endpoint one worker lost because the others' connections filled a small server is retried
when the group answers again, whichever worker saw the answer (issue 13: with two workers a
two-connection server behind 512 addresses had 17-38 of them recorded "not DICOM").
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import multiprocessing.connection
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from json import dumps
from typing import Any

from .congestion import Answers
from .engine import Archived, Closed, Done, Engine, Progress, ScanConfig, ScanStats, Sink
from .result import EndpointResult

#: a worker sends at most this many messages at once, and at least every FLUSH_SECONDS
BATCH = 2048
FLUSH_SECONDS = 0.2


#: ``encoded_sink(fields, text)``: a worker's record as its JSON text, with the fields below
EncodedSink = Callable[[dict[str, Any], str], None]

#: the fields of a record sent beside its JSON text: what the parent's statistics, progress
#: and the scan store read (store.db.ScanStore.add; store.db.JOIN_FIELDS for the end-of-scan
#: joins; scan/tests/test_parallel_workers.py keeps the two lists in step)
PARENT_FIELDS = (
    "seq", "host", "port", "state", "dicom", "tls", "associations", "product",
    "product_version", "exposure", "findings", "max_pdu", "canary_result",
    "implementation_class_uid", "implementation_version_name", "services", "honeypot",
    "toolkit", "web",
)


class _Fields:
    """Attribute access to a worker's record fields (ScanStats.add, progress callbacks)."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.state = fields.get("state", "open")
        self.dicom = fields.get("dicom", False)
        self.tls = fields.get("tls", False)
        self.associations = fields.get("associations", 0)


class WorkerFailed(RuntimeError):
    """A worker process failed or died; what the parent stored before stays resumable."""


#: below this many endpoints one process does the whole scan. A worker costs a fork and a pipe
#: (tens of milliseconds, once); a closed port costs ~30 µs to sweep but a DICOM endpoint
#: ~0.3-0.5 ms (an association at least), and a list from zmap or masscan is all open ports:
#: a /21 of DICOM servers already keeps two processes busy for a second (issue 13). The old
#: threshold (20,000) kept such lists on one core.
PARALLEL_MIN_ENDPOINTS = 2048


def auto_workers(config: ScanConfig) -> int:
    """One process for small scans (forking costs more than it saves), else one per core.

    A target list whose size is unknown (host names) is scanned by one process.
    """
    total = config.targets.count()
    if total is None or total < PARALLEL_MIN_ENDPOINTS:
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


#: allocations (net) between two youngest-generation collections during a scan (Python's
#: default: 700)
GC_THRESHOLD = 10_000


@contextlib.contextmanager
def scan_collector() -> Iterator[None]:
    """The cyclic garbage collector tuned for a scan, restored after it.

    Everything alive when the scan starts (modules, pydicom's data dictionary, the fingerprint
    and findings data: ~40,000 objects) is frozen out of the collector's generations
    (``gc.freeze``; forked workers share it, untouched), and the youngest generation is
    collected every :data:`GC_THRESHOLD` allocations instead of 700. Reference counting still
    frees everything that is not in a cycle at once; cycles wait a little longer. Measured
    (bench/profile_discovery.py's workload, Orthanc x 4,096, one process, gc.callbacks): the
    collector's own CPU fell from ~280 ms (gen0 298 collections 69 ms, gen1 28 x 105 ms, gen2
    2 x 109 ms) to ~70 ms per scan, ~50 us per association (issue 13).
    """
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


def run(config: ScanConfig, sink: Sink, **kwargs: Any) -> ScanStats:
    """Run the scan (see :func:`run_scan`) with :func:`scan_collector`."""
    with scan_collector():
        return run_scan(config, sink, **kwargs)


def run_scan(
    config: ScanConfig,
    sink: Sink,
    *,
    workers: int = 1,
    progress: Progress | None = None,
    report_closed: bool = False,
    on_done: Done | None = None,
    on_closed: Callable[[int, str], None] | None = None,
    closed_batch: Callable[[str, list[int]], None] | None = None,
    on_archive: Archived | None = None,
    encoded_sink: EncodedSink | None = None,
) -> ScanStats:
    """Run the scan in this process (``workers == 1``) or in ``workers`` forked processes.

    ``closed_batch(state, seqs)``, if given, replaces ``on_closed`` + ``on_done`` for the
    closed endpoints that workers report in bulk. ``encoded_sink(fields, text)``, if given,
    replaces ``sink`` for the records of workers: each worker encodes its records as JSON
    (``text``, what ``EndpointResult.to_dict`` gives, compact) and sends them with
    :data:`PARENT_FIELDS` of them (``fields``), so the parent neither rebuilds nor encodes
    them (issue 13: unpickling a whole record, ``from_dict`` and ``to_dict`` cost the parent
    ~65 us per record).
    """
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        engine = Engine(
            config,
            sink,
            progress=progress,
            report_closed=report_closed,
            on_done=on_done,
            on_closed=on_closed,
            on_archive=on_archive,
        )
        return asyncio.run(engine.run())

    stats = ScanStats()  # started before the workers, so the rate counts their start-up too
    ctx = multiprocessing.get_context("fork")
    procs, conns = [], []
    answers = Answers.shared(ctx)
    for k in range(workers):
        parent_end, child_end = ctx.Pipe(duplex=False)
        shard = replace(config, shard=(k, workers), rate=config.rate / workers, answers=answers)
        proc = ctx.Process(
            target=_worker,
            args=(shard, child_end, report_closed, on_archive is not None,
                  encoded_sink is not None),
            name=f"dicomguard-scan-{k}",
            daemon=True,
        )
        proc.start()
        child_end.close()
        procs.append(proc)
        conns.append(parent_end)

    done = 0
    live = set(conns)
    try:
        while live:
            for conn in multiprocessing.connection.wait(list(live)):
                try:
                    batch = conn.recv()
                except EOFError:
                    live.discard(conn)
                    continue
                for msg in batch:
                    kind = msg[0]
                    if kind == "C":
                        _, state, seqs = msg
                        stats.endpoints += len(seqs)
                        stats.states[state] += len(seqs)
                        if closed_batch is not None:
                            closed_batch(state, seqs)
                        else:
                            for seq in seqs:
                                if on_closed is not None:
                                    on_closed(seq, state)
                                if on_done is not None:
                                    on_done(seq)
                        done += len(seqs)
                        if progress is not None:
                            progress(done, Closed(state))  # type: ignore[arg-type]
                    elif kind == "t":
                        fields = msg[1]
                        view = _Fields(fields)
                        stats.add(view)  # type: ignore[arg-type]
                        done += 1
                        encoded_sink(fields, msg[2])  # type: ignore[misc]
                        if progress is not None:
                            progress(done, view)  # type: ignore[arg-type]
                    elif kind == "r":
                        result = EndpointResult.from_dict(msg[1])
                        stats.add(result)
                        done += 1
                        sink(result)
                        if progress is not None:
                            progress(done, result)
                    elif kind == "a":  # before its index's "r" and "d", as in one process
                        if on_archive is not None:
                            on_archive(msg[1], msg[2])
                    elif kind == "d":
                        if on_done is not None:
                            on_done(msg[1])
                    elif kind == "end":
                        live.discard(conn)
                    elif kind == "error":
                        raise WorkerFailed(f"scan worker failed: {msg[1]}")
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
    failed = [p.name for p in procs if p.exitcode not in (0, None)]
    if failed:
        raise WorkerFailed(f"scan worker(s) {', '.join(failed)} died")
    stats.finished = time.time()
    return stats


def _die_with_parent() -> None:
    """A killed scan (SIGKILL, then --resume) must not leave workers probing on their own."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):
        pass


def _worker(
    config: ScanConfig,
    conn: Any,
    report_closed: bool,
    archived: bool = False,
    encoded: bool = False,
) -> None:
    """Scan one shard; every message goes to the parent in batches."""
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    buffer: list[tuple[Any, ...]] = []
    closed: dict[str, list[int]] = {}
    pending = 0
    last = time.monotonic()

    def flush() -> None:
        nonlocal pending, last
        out = [("C", state, seqs) for state, seqs in closed.items() if seqs]
        # closed ones first: an open index's "d" never overtakes anything it depends on
        conn.send(out + buffer)
        buffer.clear()
        closed.clear()
        pending = 0
        last = time.monotonic()

    def send(msg: tuple[Any, ...]) -> None:
        nonlocal pending
        buffer.append(msg)
        pending += 1
        if pending >= BATCH or time.monotonic() - last >= FLUSH_SECONDS:
            flush()

    def send_closed(seq: int, state: str) -> None:
        nonlocal pending
        closed.setdefault(state, []).append(seq)
        pending += 1
        if pending >= BATCH or time.monotonic() - last >= FLUSH_SECONDS:
            flush()

    def sink(result: EndpointResult) -> None:
        record = result.to_dict()
        if encoded:
            fields = {k: record[k] for k in PARENT_FIELDS if k in record}
            send(("t", fields, dumps(record, separators=(",", ":"))))
        else:
            send(("r", record))

    try:
        engine = Engine(
            config,
            sink,
            report_closed=report_closed,
            on_done=lambda seq: send(("d", seq)),
            on_closed=send_closed,
            on_archive=(lambda seq, entry: send(("a", seq, entry))) if archived else None,
        )
        asyncio.run(engine.run())
        buffer.append(("end",))
    except BaseException as exc:  # reported to the parent, which raises it
        buffer.append(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        with contextlib.suppress(Exception):
            flush()
        conn.close()
