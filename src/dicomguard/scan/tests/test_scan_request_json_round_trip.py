"""A ScanRequest survives its JSON (what resume stores) unchanged, and stored JSON of the wrong
shape or from a newer version is one named error, never a traceback or a silently different
scan."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dicomguard.cli import build_parser
from dicomguard.scan.request import (
    REQUEST_VERSION,
    MalformedRequest,
    ScanRequest,
    ScanRequestError,
    UnsupportedVersion,
)

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
texts = st.lists(text, max_size=4).map(tuple)
maybe_text = st.none() | text


def _number(low: float, high: float, *, integer: bool, low_open: bool = False) -> st.SearchStrategy:
    if integer:
        return st.integers(int(low), int(high))
    return st.floats(low, high, exclude_min=low_open, allow_nan=False, allow_infinity=False)


def _field_strategy(f: dataclasses.Field) -> st.SearchStrategy:
    bound = f.metadata.get("bound")
    if bound is not None:
        return _number(bound.low, bound.high, integer=bound.kind is int, low_open=bound.low_open)
    if f.name == "workers":
        return st.just("auto") | st.integers(1, 64)
    if f.name in ScanRequest.CHOICES:
        return st.sampled_from(ScanRequest.CHOICES[f.name])
    if isinstance(f.default, bool):
        return st.booleans()
    if isinstance(f.default, tuple):
        return texts
    if isinstance(f.default, str):
        return text
    return maybe_text


requests = st.builds(
    ScanRequest, **{f.name: _field_strategy(f) for f in dataclasses.fields(ScanRequest)}
)


@settings(max_examples=200, deadline=None)
@given(requests)
def test_to_json_from_json_is_the_same_request(request: ScanRequest) -> None:
    assert ScanRequest.from_json(request.to_json()) == request
    assert ScanRequest.from_dict(json.loads(json.dumps(request.to_dict()))) == request


def test_stored_json_names_its_version_and_every_option() -> None:
    stored = ScanRequest(targets=("127.0.0.1",)).to_dict()
    assert stored["request_version"] == REQUEST_VERSION == 1
    assert set(stored) == {"request_version"} | {f.name for f in dataclasses.fields(ScanRequest)}


def test_every_scan_flag_is_a_request_field_or_a_display_option() -> None:
    """A new flag must reach the request (or it would be lost on resume)."""
    sub = build_parser()._subparsers._group_actions[0].choices["scan"]  # type: ignore[union-attr]
    dests = {a.dest for a in sub._actions if a.dest != "help"}
    display = {"db", "resume", "no_progress", "quiet", "fail_on"}
    assert dests - display == {f.name for f in dataclasses.fields(ScanRequest)}


def test_a_request_from_a_newer_dicomguard_is_refused_by_name() -> None:
    data = ScanRequest().to_dict() | {"request_version": REQUEST_VERSION + 1}
    with pytest.raises(UnsupportedVersion, match="newer dicomguard"):
        ScanRequest.from_dict(data)


@pytest.mark.parametrize(
    "change",
    [
        {"rate": "fast"},
        {"concurrency": 2.5},
        {"concurrency": True},
        {"targets": "127.0.0.1"},
        {"targets": [1, 2]},
        {"no_tls": "yes"},
        {"workers": "4"},  # text only in version 0 (the argparse namespace)
        {"calling_aet": None},
        {"no_such_option": 1},
        {"request_version": "1"},
    ],
    ids=lambda c: next(iter(c)),
)
def test_stored_json_of_the_wrong_shape_is_malformed(change: dict) -> None:
    with pytest.raises(MalformedRequest) as info:
        ScanRequest.from_dict(ScanRequest().to_dict() | change)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("stored", ["[1, 2]", "not json", "null"])
def test_stored_text_that_is_not_an_object_is_malformed(stored: str) -> None:
    with pytest.raises(MalformedRequest):
        ScanRequest.from_json(stored)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=3),
    max_leaves=6,
)
keys = st.sampled_from(
    [f.name for f in dataclasses.fields(ScanRequest)] + ["request_version", "db", "verbose"]
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, json_values, max_size=10))
def test_any_stored_object_is_a_request_or_a_named_error(stored: dict) -> None:
    """A damaged database's options never reach the scan as a traceback."""
    try:
        request = ScanRequest.from_dict(stored)
    except ScanRequestError as exc:
        assert "\n" not in str(exc)
        return
    try:
        request.validate()
    except ScanRequestError as exc:
        assert "\n" not in str(exc)
