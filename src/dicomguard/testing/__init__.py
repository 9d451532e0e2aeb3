"""Real DICOM servers on loopback for integration tests, the lab and the benchmarks.

Shipped inside the package (not under tests/) so that the lab and the bench can start the same
servers the tests verify. Everything here binds to or talks to loopback only. Import launchers
from :mod:`dicomguard.testing.servers`.
"""
