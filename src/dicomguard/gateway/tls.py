"""TLS for the gateway's listeners: the server context, built again on every reload.

Connections are accepted as plain TCP and upgraded with ``StreamWriter.start_tls`` using the
context current at accept time, so a reload that brings a new certificate applies to the next
association without closing the listening socket or touching live associations.
"""

from __future__ import annotations

import ssl

from .config import TlsConfig


def server_context(config: TlsConfig) -> ssl.SSLContext:
    """A TLS 1.2+ server context; verifies client certificates when ``client_ca`` is set.

    With ``client_ca`` but no ``require_client_cert``, a client certificate is optional but, if
    sent, must chain to the CA (an unverifiable certificate fails the handshake rather than
    being mapped to an identity).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = (ssl.TLSVersion.TLSv1_3 if config.min_version == "TLSv1.3"
                           else ssl.TLSVersion.TLSv1_2)
    ctx.load_cert_chain(str(config.cert), str(config.key))
    if config.client_ca is not None:
        ctx.load_verify_locations(cafile=str(config.client_ca))
        ctx.verify_mode = ssl.CERT_REQUIRED if config.require_client_cert else ssl.CERT_OPTIONAL
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
