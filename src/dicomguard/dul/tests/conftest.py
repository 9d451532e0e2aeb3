"""Reference peers for the upper-layer tests.

The real pynetdicom SCP is the test kit's session ``pynetdicom_scp`` (127.0.10.5, Verification
and C-FIND from synthetic patients); ``raw_server`` (hostile raw servers) comes from the kit too
(:mod:`dicomguard.testing.plugin`).
"""

from __future__ import annotations

import pytest

from dicomguard.testing.servers import PynetdicomFindServer


@pytest.fixture
def pynetdicom_scp(pynetdicom_scp: PynetdicomFindServer) -> tuple[str, int, int]:
    """The kit's pynetdicom SCP as (host, port, number of studies it holds)."""
    return pynetdicom_scp.host, pynetdicom_scp.port, pynetdicom_scp.ground_truth.studies
