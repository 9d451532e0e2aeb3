"""The status predicates of dul/codes.py give, for every 16-bit status, what the expressions
they replaced gave (issue 16: behaviour unchanged), and agree with pynetdicom's categories.

The old expressions are spelled out here on purpose, bare, as they were in the modules."""

from __future__ import annotations

from pynetdicom.status import code_to_category

from dicomguard.dul import codes

ALL = range(0x10000)


def test_is_pending_is_the_old_tuple_and_pynetdicoms_pending() -> None:
    for status in ALL:
        old = status in (0xFF00, 0xFF01)  # dimse.STATUS_PENDING, a tuple
        assert codes.is_pending(status) == old == (code_to_category(status) == "Pending")
    assert not codes.is_pending(None)


def test_is_success_or_warning_is_the_gateways_old_set() -> None:
    for status in ALL:
        old = status in (0x0000, 0x0001, 0x0107, 0x0116) or 0xB000 <= status <= 0xBFFF
        assert codes.is_success_or_warning(status) == old, hex(status)
    assert not codes.is_success_or_warning(None)


def test_is_c_warning_is_the_scanners_and_the_audits_old_set() -> None:
    for status in ALL:
        old = status == 0x0001 or 0xB000 <= status <= 0xBFFF  # operations, exposure, audit
        assert codes.is_c_warning(status) == old, hex(status)
        if old:
            assert code_to_category(status) == "Warning"
    assert not codes.is_c_warning(None)


def test_is_service_failure_is_the_old_high_nibble_test() -> None:
    for status in ALL:
        old = (status >> 12) in (0xA, 0xC)  # scan/intrusive.py
        assert codes.is_service_failure(status) == old, hex(status)
        if old:
            assert code_to_category(status) == "Failure"
