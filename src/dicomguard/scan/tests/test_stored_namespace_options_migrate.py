"""What dicomguard stored before ScanRequest (the argparse namespace, request version 0) reads
back as the request today's command line builds from the same flags.

``data/namespace-options.json`` was written by the code of commit 5574342 (see
``data/make_namespace_fixtures.py``): its own ``_options_to_json`` for each argv, not a copy.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from dicomguard.cli import build_parser
from dicomguard.cli.scan import request_from_args
from dicomguard.runner.merge import _options
from dicomguard.scan.request import ScanRequest

CASES = json.loads((Path(__file__).parent / "data" / "namespace-options.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=lambda c: " ".join(c["argv"][1:])[:50])
def test_stored_namespace_reads_as_todays_request(case: dict[str, Any]) -> None:
    assert "request_version" not in case["options"]  # really the old shape
    migrated = ScanRequest.from_dict(case["options"])
    today = request_from_args(build_parser().parse_args(case["argv"]))
    # --jsonl was stored as typed then (it is stored absolute since ca4bfcb)
    assert migrated == dataclasses.replace(today.resolved(Path(case["cwd"])), jsonl=today.jsonl)


def test_options_dropped_since_are_ignored_and_new_ones_get_defaults() -> None:
    stored = dict(CASES[0]["options"])
    del stored["slow_greeting"]  # an option added after that database was made
    stored["some_removed_option"] = True
    migrated = ScanRequest.from_dict(stored)
    assert migrated.slow_greeting == ScanRequest().slow_greeting
    assert migrated.targets == ("127.0.0.1",)


def test_merge_compares_an_old_and_a_new_shard_option_by_option() -> None:
    old = next(c for c in CASES if "--shard" in c["argv"])
    today = request_from_args(build_parser().parse_args(old["argv"]))
    a = _options({"options": old["options"]})
    b = _options({"options": today.resolved(Path(old["cwd"])).to_dict()})
    assert a == b
