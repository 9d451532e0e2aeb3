"""The store's resume bookkeeping and batching, driven the way the engine drives it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from dicomguard.scan.result import EndpointResult
from dicomguard.store import ScanStore, StoreError, load_scan


def _rec(seq: int, state: str = "open", dicom: bool = True) -> dict:
    r = EndpointResult(host=f"127.0.9.{seq % 250 + 1}", port=104 + seq // 250, state=state)
    r.dicom = dicom and state == "open"
    r.seq = seq
    if r.dicom:
        r.findings = [{"id": "DG-001", "severity": "high", "title": "t", "confidence": "confirmed"}]
    return r.to_dict()


def _new(path: Path, **kw) -> ScanStore:
    return ScanStore.create(path, argv=["scan", "x"], options={"rate": 1}, targets_total=1000, **kw)


def test_watermark_and_done_set_survive_a_crash(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = _new(db, batch_size=10_000, batch_seconds=3600, watermark_seconds=0)
    order = [0, 2, 3, 5, 1, 7]  # finished out of order, as concurrent workers do
    for seq in order:
        store.add(_rec(seq))
        store.mark_done(seq)
    # 4 and 6 still in flight; one of them has a result staged but is not done
    store.add(_rec(4))
    assert store.resume_point() == (4, frozenset({5, 7}))
    store.close()  # the process dies here: no finish(), no last commit

    again = ScanStore.resume(db)
    start, skip = again.resume_point()
    # 7 finished after the last commit (the watermark did not move): lost, so scanned again
    assert (start, skip) == (4, frozenset({5}))
    # what the database holds is exactly what it says is done: nothing of 4 (in flight) or 7
    seqs = sorted(r["seq"] for r in again.records())
    assert seqs == [0, 1, 2, 3, 5]
    again.close()


def test_resumed_scan_equals_uninterrupted(tmp_path: Path) -> None:
    n = 400
    rng = random.Random(7)
    states = {i: rng.choice(["open", "open", "closed", "filtered"]) for i in range(n)}

    def run(store: ScanStore, seqs: list[int]) -> None:
        for s in seqs:
            store.add(_rec(s, states[s]))
            store.mark_done(s)

    whole = _new(tmp_path / "whole.db", batch_size=7, batch_seconds=3600)
    run(whole, list(range(n)))
    whole.finish({})
    whole.close()

    part = _new(tmp_path / "part.db", batch_size=7, batch_seconds=3600)
    first = list(range(250))
    rng.shuffle(first)  # completion order is not target order
    run(part, first[:200])
    part.close()  # killed: the last partial batch is lost, that is the point
    resumed = ScanStore.resume(tmp_path / "part.db", batch_size=7, batch_seconds=3600)
    start, skip = resumed.resume_point()
    assert len(skip) <= 250
    run(resumed, [s for s in range(start, n) if s not in skip])
    resumed.finish({})
    resumed.close()

    a, b = load_scan(tmp_path / "whole.db"), load_scan(tmp_path / "part.db")
    assert a.records == b.records
    assert a.meta["states"] == b.meta["states"]
    assert a.probed == b.probed == n
    assert b.meta["resumed"] == 1
    assert len({(r["host"], r["port"]) for r in b.records}) == len(b.records)


def test_commits_batch_and_follow_the_watermark(tmp_path: Path) -> None:
    store = _new(tmp_path / "b.db", batch_size=50, batch_seconds=3600, watermark_seconds=0)
    seen: list[int] = []
    store.listeners.append(lambda batch: seen.extend(r["seq"] for r in batch))
    for s in range(1, 40):  # index 0 still running: the watermark does not move
        store.add(_rec(s))
        store.mark_done(s)
    assert store.commits == 0 and seen == []
    store.add(_rec(0))
    store.mark_done(0)  # the watermark jumps to 40: commit now
    assert store.commits == 1 and sorted(seen) == list(range(40))
    store.close()


def test_watermark_commits_are_spaced(tmp_path: Path) -> None:
    """Every endpoint open, finishing in order: not one commit per endpoint."""
    store = _new(tmp_path / "s.db", batch_size=1000, batch_seconds=3600, watermark_seconds=3600)
    for s in range(500):
        store.add(_rec(s))
        store.mark_done(s)
    assert store.commits == 0
    store.finish({})
    assert store.commits == 1 and len(load_scan(tmp_path / "s.db").records) == 500
    store.close()


def test_closed_endpoints_counted_not_stored_unless_asked(tmp_path: Path) -> None:
    for store_all, expect in ((False, 1), (True, 2)):
        db = tmp_path / f"c{store_all}.db"
        store = _new(db, store_all=store_all)
        store.add(_rec(0, "open"))
        store.mark_done(0)
        store.add(_rec(1, "closed"))
        store.mark_done(1)
        store.finish({"endpoints": 2})
        store.close()
        scan = load_scan(db)
        assert len(scan.records) == expect
        assert scan.meta["states"] == {"closed": 1, "open": 1}
        assert scan.meta["finished_at"] and scan.meta["stats"] == {"endpoints": 2}


def test_refuses_to_overwrite_or_resume_finished(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    store = _new(db)
    store.finish({})
    store.close()
    with pytest.raises(StoreError, match="already holds a scan"):
        _new(db)
    with pytest.raises(StoreError, match="finished"):
        ScanStore.resume(db)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(StoreError):
        load_scan(junk)


def test_json_listeners_get_the_stored_text(tmp_path: Path) -> None:
    """The JSON Lines file is written from the very text the database stores (one encoding)."""
    store = _new(tmp_path / "j.db", batch_size=5, batch_seconds=3600)
    lines: list[str] = []
    store.json_listeners.append(lines.extend)
    for s in range(12):
        store.add(_rec(s))
        store.mark_done(s)
    store.commit()  # (finish() may annotate records afterwards: cross-host honeypot signals)
    stored = [r[0] for r in store.conn.execute("SELECT record FROM endpoints ORDER BY seq")]
    assert sorted(lines) == sorted(stored) and len(lines) == 12
    assert [json.loads(x) for x in lines] == [json.loads(x) for x in stored]
    store.close()
