"""dicomguard's test kit: real DICOM servers on loopback, reference peers, canonical PDUs,
certificates and the loopback-only guard, offered to pytest by :mod:`.plugin`.

Shipped inside the package (not under tests/) so that the lab and the bench can start the same
servers the tests verify, and so that the plugin is registered by the package's ``pytest11``
entry point. Everything here binds to or talks to loopback only (:mod:`.guard`). Import
launchers from :mod:`dicomguard.testing.servers`; the map of the kit is in
docs/ARCHITECTURE.md ("The test kit").
"""
