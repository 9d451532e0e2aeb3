"""What a test needs from the machine: skipped locally when it is missing, a failure under CI.

CI (``CI=true``) must prove the integration tests ran, not quietly skip them; on a developer's
machine a missing Orthanc, DCMTK tool or chromium is a skip that says how to get it.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

from dicomguard.testing.base import find_binary


def unavailable(msg: str) -> NoReturn:
    """Skip the test with ``msg``, or fail it under CI (``CI=true``)."""
    if os.environ.get("CI") == "true":
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def need_binaries(*names: str) -> None:
    """Go on only if every system binary in ``names`` is installed (:func:`find_binary`)."""
    missing = [n for n in names if find_binary(n) is None]
    if missing:
        unavailable(f"missing server binaries {missing}: run scripts/bootstrap "
                    "(installs dcmtk, orthanc)")
