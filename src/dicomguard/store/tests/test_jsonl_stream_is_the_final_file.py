"""The JSON Lines stream of a scan is kept as the final file only when it is that file.

Issue 13: the end of a scan rewrote the file from the database (a decode and an encode per
record). Now the stored texts are written as they are, and not at all when the lines streamed
during the scan already are the final file: in target order, one per stored endpoint, and no
record changed by the end-of-scan joins. Either way the bytes are those the old rewrite
(``records()`` through ``JsonlWriter.write``) gave.
"""

from __future__ import annotations

from pathlib import Path

from dicomguard.scan.output import JsonlWriter
from dicomguard.scan.result import EndpointResult
from dicomguard.store import ScanStore


def _rec(seq: int, host: str | None = None, dicom: bool = False) -> dict:
    """An open endpoint; DICOM ones alike on several hosts are a honeypot cluster to the
    end-of-scan join (knowledge.honeypot), which then changes their records."""
    r = EndpointResult(host=host or f"127.0.9.{seq + 1}", port=104, state="open")
    r.dicom = dicom
    r.seq = seq
    r.product = "Orthanc ünïcode"  # non-ASCII: escaped alike by both encodings
    r.operations = {"verification": {"state": "answered", "rtt_ms": 1.25}}
    return r.to_dict()


def _scan(tmp_path: Path, records: list[dict]) -> tuple[ScanStore, Path]:
    store = ScanStore.create(
        tmp_path / "s.db", argv=["scan", "x"], options={}, targets_total=100,
        batch_size=2, batch_seconds=3600, watermark_seconds=3600,
    )
    stream = tmp_path / "stream.jsonl"
    writer = JsonlWriter(stream)
    store.json_listeners.append(writer.write_lines)
    for rec in records:
        store.add(rec)
        store.mark_done(rec["seq"])
    store.finish({})
    writer.close()
    return store, stream


def _old_rewrite(store: ScanStore, path: Path) -> bytes:
    with JsonlWriter(path) as out:
        for rec in store.records():
            out.write(rec)
    return path.read_bytes()


def test_records_streamed_in_target_order_are_the_final_file(tmp_path: Path) -> None:
    store, stream = _scan(tmp_path, [_rec(i) for i in range(5)])
    assert store.stream_is_final()
    assert stream.read_bytes() == _old_rewrite(store, tmp_path / "old.jsonl")
    assert "\n".join(store.record_texts()) + "\n" == stream.read_text()


def test_records_streamed_out_of_order_are_rewritten(tmp_path: Path) -> None:
    store, _ = _scan(tmp_path, [_rec(i) for i in (0, 2, 1, 3)])
    assert not store.stream_is_final()
    assert "\n".join(store.record_texts()) + "\n" == _old_rewrite(
        store, tmp_path / "old.jsonl").decode()


def test_an_endpoint_listed_twice_is_rewritten(tmp_path: Path) -> None:
    # a name and its address: two target indices, one stored row (the latest)
    store, _ = _scan(tmp_path, [_rec(0), _rec(1, host="127.0.9.1")])
    assert not store.stream_is_final()
    assert len(list(store.record_texts())) == 1


def test_a_record_changed_at_the_end_is_rewritten(tmp_path: Path) -> None:
    store, stream = _scan(tmp_path, [_rec(i, dicom=True) for i in range(3)])
    assert store.changed_at_finish and not store.stream_is_final()
    final = "\n".join(store.record_texts()) + "\n"
    assert final != stream.read_text() and '"honeypot"' in final
    assert final == _old_rewrite(store, tmp_path / "old.jsonl").decode()
