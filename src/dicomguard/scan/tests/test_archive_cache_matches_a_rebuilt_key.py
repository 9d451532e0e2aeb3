"""An archive cache entry rebuilt from an old database's record (store.db.rebuilt_archive)
names services, not accepted abstract syntaxes: it matches a port whose accepted syntaxes
prove the same services, and only such a port."""

from __future__ import annotations

from dicomguard.knowledge import sopclasses as sc
from dicomguard.scan.exposure import ArchiveCache, context_services

IMPL, VERSION = "1.2.3", "V1"


def test_rebuilt_key_matches_the_same_services_only() -> None:
    cache = ArchiveCache()
    rebuilt = (IMPL, VERSION, None, ("find_study_root", "verification"))
    cache.remember("h", rebuilt, ("19960719-19961231", 4, "20250101-20250809", 2), {"n": 1})
    same = tuple(sorted((sc.VERIFICATION, sc.STUDY_ROOT_FIND)))
    assert context_services(same) == ("find_study_root", "verification")
    assert cache.lookup("h", (IMPL, VERSION, same)) == [
        (("19960719-19961231", 4, "20250101-20250809", 2), {"n": 1})
    ]
    more = tuple(sorted((*same, sc.MODALITY_WORKLIST_FIND)))
    with_canary = tuple(sorted((*same, sc.CANARY)))
    for key in ((IMPL, VERSION, more), (IMPL, VERSION, with_canary), (IMPL, "V2", same)):
        assert cache.lookup("h", key) == []
    assert cache.lookup("other", (IMPL, VERSION, same)) == []
    assert context_services(with_canary) == ("canary", "find_study_root", "verification")


def test_stored_key_still_needs_the_same_syntaxes() -> None:
    cache = ArchiveCache()
    one = (IMPL, VERSION, (sc.STUDY_ROOT_FIND,))
    cache.remember("h", one, ("20200101", 1, "20200102", 1), {})
    assert len(cache.lookup("h", one)) == 1
    assert cache.lookup("h", (IMPL, VERSION, (sc.STUDY_ROOT_FIND, sc.VERIFICATION))) == []
