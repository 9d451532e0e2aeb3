"""The use cases that join the parts (naabu's ``runner``): a scan session runs a
:class:`~dicomguard.scan.request.ScanRequest` against the store, the GeoIP database and the
console summary; merge joins the shard databases of one scan. The entry points in
:mod:`dicomguard.cli` turn flags into requests and call these; nothing below imports them.
"""
