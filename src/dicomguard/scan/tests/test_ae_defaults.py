"""Vendor-default AE titles: sourced data, tried first, called x calling within one budget."""

from __future__ import annotations

import pytest

from dicomguard.dul.scp import AcceptorPolicy, start_acceptor
from dicomguard.dul.scu import Timeouts
from dicomguard.knowledge.aedefaults import load_ae_defaults, load_wordlist, parse_ae_defaults
from dicomguard.scan.assess import ProbeOptions, assess

HOST = "127.0.0.1"
TIMEOUTS = Timeouts(connect=1.0, associate=1.0, dimse=2.0, release=0.5)


def test_every_default_has_a_source_and_comes_before_generic_words() -> None:
    d = load_ae_defaults()
    assert {"ORTHANC", "DCM4CHEE", "CONQUESTSRV1"} <= set(d.called_titles)
    assert {"FINDSCU", "STORESCU", "ECHOSCU"} <= set(d.calling_titles)
    assert all(x.source.strip() for x in (*d.called, *d.calling))
    words = ProbeOptions().wordlist
    assert words[: len(d.called)] == d.called_titles
    assert set(load_wordlist()) <= set(words) and len(set(words)) == len(words)
    with pytest.raises(ValueError):
        parse_ae_defaults('schema_version = 1\n[[called]]\ntitle = "X"\nproduct = "p"\n')


async def test_called_and_calling_defaults_are_paired_within_the_budget() -> None:
    policy = AcceptorPolicy(
        ae_title="ORTHANC",
        called_aets=frozenset({"ORTHANC"}),
        calling_aets=frozenset({"FINDSCU"}),
    )
    server = await start_acceptor(HOST, 0, policy)
    port = server.sockets[0].getsockname()[1]
    async with server:
        r = await assess(HOST, port, ProbeOptions(timeouts=TIMEOUTS, exposure=None))
        assert r.called_aet["enforced"] and r.called_aet["accepted"] == "ORTHANC"
        assert r.calling_aet["enforced"] and r.calling_aet["accepted"] == "FINDSCU"
        assert r.services["verification"] is True
        # random title, ANY-SCP, ORTHANC (reason 3), FINDSCU: four associations
        assert r.associations == 4
        tight = await assess(
            HOST, port, ProbeOptions(timeouts=TIMEOUTS, exposure=None, max_aet_guesses=2)
        )
        assert tight.associations == 3 and tight.calling_aet.get("accepted") is None
