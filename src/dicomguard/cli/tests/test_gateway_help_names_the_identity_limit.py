"""``dicomguard gateway --help`` says what the user identity limit is and where every key is
described (found by review: the help named no limit, the config keys only in the source)."""

from __future__ import annotations

import subprocess
import sys

from dicomguard.gateway.config import Limits


def test_gateway_help_names_the_identity_limit_and_its_defaults() -> None:
    out = subprocess.run([sys.executable, "-m", "dicomguard", "gateway", "--help"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    text = " ".join(out.split())
    limits = Limits()
    assert f"max_identity_failures_per_source ({limits.max_identity_failures_per_source})" in text
    assert f"identity_failure_window ({limits.identity_failure_window:g} s)" in text
    assert "2,3,2" in text
    assert "dicomguard.gateway.config" in text
