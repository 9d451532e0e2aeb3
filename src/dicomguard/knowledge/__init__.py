"""DICOM knowledge shared by every part: what the standard and real products say, as data.

Below scan, report, gateway and lab; above dul (it may use dul's names, never the reverse).
Nothing here opens a socket. See docs/ARCHITECTURE.md, "Layers".
"""
