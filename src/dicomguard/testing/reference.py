"""Reference peers: a pynetdicom SCP started in one call, for tests that need an independent
acceptor with their own handlers, and a pynetdicom SCU association in one ``with``.

pynetdicom is independent of dicomguard's upper layer (``dul/``), which is the point of a
reference peer: a behaviour both implementations agree on is the standard's, not ours. The SCP
runs in pynetdicom's own server thread (``AE.start_server(block=False)``).

Launchers with measured expectations (:class:`~dicomguard.testing.pynetdicom_scp.
PynetdicomFindServer`, Orthanc, DCMTK) are in :mod:`dicomguard.testing.servers`; this module is
the bare SCP they and the tests build on. The pytest plugin offers it as the ``reference_scp``
fixture.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification
from pynetdicom.transport import ThreadedAssociationServer

from dicomguard.testing.guard import assert_loopback
from dicomguard.testing.loopback import free_port

#: (event, handler) pairs as pynetdicom's ``evt_handlers`` takes them.
Handlers = Sequence[tuple[Any, Any]]


def start_scp(
    host: str = "127.0.0.1",
    port: int | None = None,
    *,
    ae_title: str = "REFSCP",
    contexts: Sequence[str] = (Verification,),
    handlers: Handlers = (),
    require_called_aet: bool = False,
    require_calling_aet: Sequence[str] = (),
    timeout: float | None = None,
    maximum_pdu_size: int | None = None,
    maximum_associations: int | None = None,
) -> ThreadedAssociationServer:
    """Start a pynetdicom SCP on ``host:port`` (a free port when None) and return its server
    (``server.server_address[1]`` is the port; ``server.shutdown()`` stops it).

    ``contexts``: abstract syntaxes accepted with pynetdicom's default transfer syntaxes.
    ``timeout``: ACSE, DIMSE and network timeouts in seconds (pynetdicom's defaults when None).
    ``require_called_aet`` / ``require_calling_aet``: pynetdicom answers A-ASSOCIATE-RJ
    (1, 1, 7) / (1, 1, 3) to other titles. ``maximum_associations``: above it, (2, 3, 2).
    Raises OSError when the port cannot be bound (a free port is tried three times: another
    process may take it between the probe and the bind).
    """
    assert_loopback(host)
    ae = AE(ae_title=ae_title)
    ae.require_called_aet = require_called_aet
    if require_calling_aet:
        ae.require_calling_aet = list(require_calling_aet)
    if timeout is not None:
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    if maximum_pdu_size is not None:
        ae.maximum_pdu_size = maximum_pdu_size
    if maximum_associations is not None:
        ae.maximum_associations = maximum_associations
    for uid in contexts:
        ae.add_supported_context(uid)
    for attempt in range(1 if port else 3):
        try:
            return ae.start_server((host, port or free_port(host)), block=False,
                                   evt_handlers=list(handlers))
        except OSError:
            if port or attempt == 2:
                raise
    raise AssertionError("unreachable")


@contextmanager
def running_scp(host: str = "127.0.0.1", port: int | None = None,
                  **options: Any) -> Iterator[int]:
    """:func:`start_scp` as a context manager yielding the port; shut down on exit."""
    server = start_scp(host, port, **options)
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()


@contextmanager
def scu_association(
    host: str,
    port: int,
    contexts: Sequence[str],
    *,
    calling: str = "DGREFSCU",
    called: str = "ANY-SCP",
    timeout: float | None = None,
    **associate_options: Any,
) -> Iterator[Association]:
    """A pynetdicom SCU association proposing ``contexts`` (pynetdicom's default transfer
    syntaxes), released on exit if it was established. The caller checks
    ``assoc.is_established`` (or ``is_rejected``): a refused association is an answer too.

    ``timeout``: ACSE, DIMSE and network timeouts in seconds (pynetdicom's when None);
    ``associate_options`` go to :meth:`pynetdicom.AE.associate` (``ext_neg``, ``bind_address``...).
    """
    assert_loopback(host)
    ae = AE(ae_title=calling)
    if timeout is not None:
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    for uid in contexts:
        ae.add_requested_context(uid)
    assoc = ae.associate(host, port, ae_title=called, **associate_options)
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def identifier(level: str, **keys: str) -> Dataset:
    """A C-FIND identifier: ``QueryRetrieveLevel`` then ``keys`` (keyword -> value; "" asks
    for the value back, PS3.4 C.2.2.1.2 universal matching), in the order given."""
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds
