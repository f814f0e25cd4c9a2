"""The CLI's TLS / token flags, one home for both sides: a server's (`--tls-cert/--tls-key`,
`--tls-client-ca`, `--auth-tokens`, `--insecure`, `--reflection`) and a client's (`--tls-ca`, a
client certificate, `--tls-server-name`, `--token-file` or $EDGESPEC_TOKEN), and what they build
(`ServerOptions` fields, an upstream `ClientSecurity`, the SDK's connection arguments). Imports
no torch: `generate` uses it. It does NOT implement TLS or auth (`rpc/security.py`, `rpc/auth.py`).
"""

from __future__ import annotations

import argparse
import os


def add_server_security_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reflection", action="store_true", help="serve gRPC reflection on a non-loopback listener too")
    p.add_argument("--tls-cert", default=None, metavar="PEM", help="serve TLS with this certificate (chain)")
    p.add_argument("--tls-key", default=None, metavar="PEM", help="the private key of --tls-cert")
    p.add_argument("--tls-client-ca", default=None, metavar="PEM",
                   help="require client certificates signed by this CA (mTLS)")
    p.add_argument("--auth-tokens", default=None, metavar="FILE", help="require a bearer token from this file "
                   "(TOKEN [NAME [SERVICE,...]] per line; re-read when it changes)")
    p.add_argument("--insecure", action="store_true",
                   help="allow plaintext on a non-loopback --listen (refused without it)")


def server_security(a: argparse.Namespace) -> dict:
    """ServerOptions' security fields from the server flags."""
    from edgespec.rpc.security import server_tls
    return {"tls": server_tls(a.tls_cert, a.tls_key, a.tls_client_ca), "auth_tokens": a.auth_tokens,
            "insecure": a.insecure, "reflection": False if a.no_reflection else True if a.reflection else None}


def add_client_security_flags(p: argparse.ArgumentParser, upstream: bool) -> None:
    """How a client dials: a CA (TLS), a client certificate (mTLS), a server-name override, a
    token. `upstream`: a server's flags for the services it dials (its own --tls-cert is taken)."""
    cert, key = ("--tls-client-cert", "--tls-client-key") if upstream else ("--tls-cert", "--tls-key")
    what = "the target and draft services" if upstream else "the server"
    p.add_argument("--tls-ca", default=None, metavar="PEM", help=f"dial {what} over TLS, trusting this CA")
    p.add_argument(cert, dest="client_cert", default=None, metavar="PEM", help="client certificate (mTLS)")
    p.add_argument(key, dest="client_key", default=None, metavar="PEM", help=f"the private key of {cert}")
    p.add_argument("--tls-server-name", default=None, help="expect this name in the server certificate "
                   "(when dialling through a proxy such as `edgespec netproxy`)")
    p.add_argument("--token-file", default=None, metavar="FILE",
                   help="send the bearer token in this file (default: $EDGESPEC_TOKEN)")


def _token(a: argparse.Namespace) -> str | None:
    """The token of --token-file, else $EDGESPEC_TOKEN (None: no token)."""
    if a.token_file:
        from edgespec.rpc.security import read_token
        return read_token(a.token_file)
    return os.environ.get("EDGESPEC_TOKEN") or None


def sdk_connection(a: argparse.Namespace) -> dict:
    """The SDK client's TLS / token arguments from `generate`'s flags."""
    return {"tls_ca": a.tls_ca, "tls_cert": a.client_cert, "tls_key": a.client_key,
            "server_name": a.tls_server_name, "token": _token(a)}


def client_security(a: argparse.Namespace):
    """The ClientSecurity a draft or orchestrator dials its upstream services with."""
    from edgespec.rpc.security import ClientSecurity
    return ClientSecurity(ca=a.tls_ca, cert=a.client_cert, key=a.client_key, server_name=a.tls_server_name,
                          token=_token(a))
