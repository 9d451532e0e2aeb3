"""dicomguard: find exposed DICOM services, measure what they leak, guard legacy devices."""

__version__ = "0.1.0"
