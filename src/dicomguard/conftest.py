"""Session-wide pytest fixtures: real DICOM servers on distinct loopback addresses.

Each fixture starts its server once per test session and stops it at the end. When the server
software is missing, tests that need it are skipped locally but FAIL under CI (``CI=true``),
because CI must prove the integration tests ran, not quietly skip them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from dicomguard.testing.servers import (
    DcmqrscpServer,
    LoopbackServer,
    OrthancServer,
    PynetdicomFindServer,
    PynetdicomQrscpServer,
    StorescpServer,
    WlmscpfsServer,
    find_binary,
    lab_address,
)


def _need(*binaries: str) -> None:
    missing = [b for b in binaries if find_binary(b) is None]
    if not missing:
        return
    msg = f"missing server binaries {missing}: run scripts/bootstrap (installs dcmtk, orthanc)"
    if os.environ.get("CI") == "true":
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def _serve(factory: Callable[[], LoopbackServer]) -> Iterator[LoopbackServer]:
    server = factory()
    with server:
        yield server


@pytest.fixture(scope="session")
def orthanc_open() -> Iterator[LoopbackServer]:
    """Orthanc that lets anyone in with any called AE (preset ``open``) on 127.0.10.1."""
    _need("Orthanc")
    yield from _serve(lambda: OrthancServer(lab_address(1), preset="open"))


@pytest.fixture(scope="session")
def orthanc_locked() -> Iterator[LoopbackServer]:
    """Orthanc checking called AE and knowing only DGVIEWER (preset ``locked``) on 127.0.10.2."""
    _need("Orthanc")
    yield from _serve(lambda: OrthancServer(lab_address(2), preset="locked"))


@pytest.fixture(scope="session")
def dcmqrscp_aetable() -> Iterator[LoopbackServer]:
    """dcmqrscp: called AE DGQRSCP, calling AE DGVIEWER only, on 127.0.10.3."""
    _need("dcmqrscp", "dcmqridx")
    yield from _serve(lambda: DcmqrscpServer(lab_address(3)))


@pytest.fixture(scope="session")
def storescp_server() -> Iterator[LoopbackServer]:
    """DCMTK storescp (store-only, any AE titles) on 127.0.10.4."""
    _need("storescp")
    yield from _serve(lambda: StorescpServer(lab_address(4)))


@pytest.fixture(scope="session")
def storescp_big_pdu_server() -> Iterator[LoopbackServer]:
    """storescp accepting 128 KiB PDUs on 127.0.10.6 (large PDUs: the gateway's splice path)."""
    _need("storescp")
    yield from _serve(lambda: StorescpServer(lab_address(6), max_pdu=131072))


@pytest.fixture(scope="session")
def pynetdicom_scp() -> Iterator[LoopbackServer]:
    """In-process pynetdicom Verification + C-FIND SCP, no AE checks, on 127.0.10.5."""
    yield from _serve(lambda: PynetdicomFindServer(lab_address(5)))


@pytest.fixture(scope="session")
def orthanc_default() -> Iterator[OrthancServer]:
    """Orthanc at its own defaults (preset ``default``: no DicomModalities, Find/Move/Get not
    always allowed) on 127.0.10.20: contexts accepted, a stranger's operations aborted."""
    _need("Orthanc")
    yield from _serve(lambda: OrthancServer(lab_address(20), preset="default"))


@pytest.fixture(scope="session")
def orthanc_modalities() -> Iterator[OrthancServer]:
    """Orthanc with DicomAlwaysAllowFind false and one DicomModalities entry (DGVIEWER)."""
    _need("Orthanc")
    yield from _serve(lambda: OrthancServer(lab_address(21), preset="modalities"))


@pytest.fixture(scope="session")
def orthanc_worklist() -> Iterator[OrthancServer]:
    """Orthanc with the worklist plugin, Q/R open, DicomAlwaysAllowFindWorklist false."""
    _need("Orthanc")
    yield from _serve(lambda: OrthancServer(lab_address(22), preset="worklist"))


@pytest.fixture(scope="session")
def storescp_tls() -> Iterator[StorescpServer]:
    """DCMTK storescp speaking DICOM only inside TLS (``+tls key crt -ic``) on 127.0.10.23."""
    _need("storescp")
    yield from _serve(lambda: StorescpServer(lab_address(23), tls="tls"))


@pytest.fixture(scope="session")
def storescp_mutual_tls() -> Iterator[StorescpServer]:
    """DCMTK storescp requiring a client certificate (``+tls key crt +cf ca -rc``), 127.0.10.24."""
    _need("storescp")
    yield from _serve(lambda: StorescpServer(lab_address(24), tls="mutual"))


@pytest.fixture(scope="session")
def orthanc_mutual_tls() -> Iterator[OrthancServer]:
    """Orthanc with DicomTlsEnabled and DicomTlsRemoteCertificateRequired, on 127.0.10.25."""
    _need("Orthanc")
    yield from _serve(
        lambda: OrthancServer(lab_address(25), preset="open", dicom_tls="mutual")
    )


@pytest.fixture(scope="session")
def storescp_mutual_tls12() -> Iterator[StorescpServer]:
    """storescp requiring a client certificate over TLS 1.2 only (``+pa``), on 127.0.10.28."""
    _need("storescp")
    yield from _serve(
        lambda: StorescpServer(lab_address(28), tls="mutual", tls_profile="+pa")
    )


@pytest.fixture(scope="session")
def wlmscpfs_server() -> Iterator[LoopbackServer]:
    """DCMTK wlmscpfs with synthetic worklist files under its example title OFFIS, 127.0.10.8."""
    _need("wlmscpfs")
    yield from _serve(lambda: WlmscpfsServer(lab_address(8)))


@pytest.fixture(scope="session")
def pynetdicom_qrscp() -> Iterator[LoopbackServer]:
    """``python -m pynetdicom qrscp`` (its Q/R archive app) on 127.0.10.9."""
    yield from _serve(lambda: PynetdicomQrscpServer(lab_address(9)))
