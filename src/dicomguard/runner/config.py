"""A ScanRequest as the engine's :class:`~dicomguard.scan.engine.ScanConfig`: probe options,
timeouts, identity, evidence, web checks; the files the request names are read here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..scan.request import ScanRequest
from .errors import ScanSetupError
from .outputs import check_output_paths
from .targets import scan_targets

__all__ = ["build_config"]


def build_config(request: ScanRequest, *, db: str | None = None) -> Any:
    """The engine's ScanConfig for ``request`` (validated here), with targets expanded and
    files read; ``db`` is checked writable with the other outputs.

    Raises ScanRequestError (values) or ScanSetupError (what they point at).
    """
    from ..dul.scu import Timeouts
    from ..knowledge.aedefaults import load_wordlist
    from ..scan.assess import ProbeOptions
    from ..scan.engine import ScanConfig
    from ..scan.tls_probe import TlsProbeOptions
    from ..scan.web import WebOptions

    request.validate()
    targets, web_ports = scan_targets(request)
    check_output_paths(
        {"--jsonl": request.jsonl, "--db": db},
        request.evidence,
        {"-iL": request.input_files, "--exclude-file": request.exclude_file},
    )
    wordlist = None
    if request.wordlist:
        try:
            wordlist = load_wordlist(Path(request.wordlist).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ScanSetupError(
                f"cannot read wordlist {request.wordlist}: {exc.strerror}"
            ) from None
        except UnicodeDecodeError as exc:
            raise ScanSetupError(
                f"wordlist {request.wordlist}: not UTF-8 text (byte {exc.start})"
            ) from None
    exposure = None
    if not request.no_exposure:
        import secrets

        from ..scan.exposure import ExposureOptions

        exposure = ExposureOptions(
            query_budget=request.query_budget,
            # half the endpoint's budget: the count ends as a flagged lower bound before the
            # engine would cut the whole endpoint off (and with it the partial count)
            time_budget=min(ExposureOptions.time_budget, request.endpoint_budget / 2),
            collect_identifiers=request.collect_identifiers,
            salt=secrets.token_bytes(16),  # per scan: hashes link within a scan, not across
        )
    extra: dict[str, Any] = {}
    if request.impersonate:
        from ..scan.identity import ImpersonationError, impersonation

        try:
            extra["identity"] = impersonation(request.impersonate)
        except ImpersonationError as exc:
            raise ScanSetupError(str(exc)) from None
    if request.evidence:
        extra["evidence_dir"] = str(Path(request.evidence).resolve())
    t = request.timeout
    probe = ProbeOptions(
        exposure=exposure,
        calling_aet=request.calling_aet.strip(),
        max_aet_guesses=request.max_aet_guesses,
        timeouts=Timeouts(
            connect=request.connect_timeout, associate=t, dimse=t * 2, release=min(t, 2.0)
        ),
        slow_greeting_timeout=request.slow_greeting,
        try_tls=not request.no_tls,
        discovery=request.discovery,
        tls_probe=TlsProbeOptions(timeout=max(request.connect_timeout, t)),
        web=WebOptions(ports=web_ports, request_budget=request.query_budget, timeout=t)
        if web_ports
        else None,
        intrusive=request.intrusive,
        **({"wordlist": wordlist} if wordlist is not None else {}),
        **extra,
    )
    if request.sweep == "syn":
        from ..scan.synsweep import raw_sockets_available

        if not raw_sockets_available():
            raise ScanSetupError("--sweep syn needs raw sockets (root or CAP_NET_RAW)")
    return ScanConfig(
        sweep=request.sweep,
        targets=targets,
        probe=probe,
        concurrency=request.concurrency,
        per_host=request.per_host,
        rate=request.rate,
        order=request.order,
        endpoint_budget=request.endpoint_budget,
        endpoint_connections=request.endpoint_connections,
        transient_retries=request.retries,
    )
