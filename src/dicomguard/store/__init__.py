"""Scan results in SQLite: crash-safe batched writes, resume bookkeeping, read-back for reports."""

from .db import ScanStore, StoreError
from .read import StoredScan, load_scan

__all__ = ["ScanStore", "StoreError", "StoredScan", "load_scan"]
