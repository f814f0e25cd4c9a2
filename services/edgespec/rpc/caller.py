"""Who is calling: the identity a server counts sessions against (per-caller limits) — the token
name the auth interceptor set for this call when token auth is on, else the common name of the
client certificate (mTLS), else the peer's IP address.
Loopback peers without a token are anonymous (""): every local process, a proxy or a load
generator shares that address, so a per-peer cap would mean nothing there. It is NOT the auth
check itself (`rpc/auth.py`) and never holds a token.
"""

from __future__ import annotations

import ipaddress
from contextvars import ContextVar

CALLER: ContextVar[str] = ContextVar("edgespec_caller", default="")  # set per call by the auth interceptor


def caller_of(context) -> str:
    """The calling identity of this RPC ("" when anonymous)."""
    return CALLER.get() or certificate_name(context.auth_context() or {}) or peer_host(context.peer() or "")


def certificate_name(auth: dict) -> str:
    """'cert:<CN>' of a verified client certificate (mTLS), else ''."""
    names = auth.get("x509_common_name") or ()
    return f"cert:{names[0].decode(errors='replace')}" if names else ""


def peer_host(peer: str) -> str:
    """'ipv4:10.0.0.7:5123' -> 'ip:10.0.0.7'; loopback, unix sockets and unknown peers -> ''."""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return ""
    host = rest.rsplit(":", 1)[0].strip("[]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return ""
    return "" if address.is_loopback else f"ip:{address}"
