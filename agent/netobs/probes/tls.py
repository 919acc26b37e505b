"""TLS pieces shared by the TCP and HTTP probes: client contexts and what a handshake tells."""

from __future__ import annotations

import functools
import ssl
import time
from datetime import UTC

from cryptography import x509

from netobs.result import TlsInfo


def client_context(verify: bool, ca_file: str | None = None, alpn: list[str] | None = None) -> ssl.SSLContext:
    """A client context: verification on (system store or ``ca_file``) unless ``verify`` is false."""
    ctx = ssl.create_default_context(cafile=ca_file)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def tls_info(ssl_object: ssl.SSLObject | ssl.SSLSocket | None, verified: bool) -> TlsInfo:
    """Version, cipher and leaf certificate facts of an established TLS session."""
    if ssl_object is None:
        return TlsInfo()
    cipher = ssl_object.cipher()
    info = TlsInfo(
        version=ssl_object.version(),
        cipher=cipher[0] if cipher else None,
        chain_verified=verified,
    )
    der = ssl_object.getpeercert(binary_form=True)
    if der:
        not_after_s, info.cert_subject, info.cert_issuer = _leaf_facts(der)
        info.cert_not_after_ms = int(not_after_s * 1000)
        info.cert_expiry_days = round((not_after_s - time.time()) / 86400.0, 4)
    return info


@functools.lru_cache(maxsize=4096)
def _leaf_facts(der: bytes) -> tuple[float, str, str]:
    """(not-after as Unix seconds, subject, issuer) of a DER certificate. A target shows the same
    certificate run after run, and parsing it cost every TLS run ~26 µs (in a tight loop; ~70 in the agent,
    by py-spy): parsed once per certificate."""
    cert = x509.load_der_x509_certificate(der)
    not_after = cert.not_valid_after_utc.replace(tzinfo=UTC)
    return not_after.timestamp(), cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
