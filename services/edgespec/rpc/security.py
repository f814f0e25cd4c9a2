"""Transport security of every edgespec server and client: TLS (mTLS when a client CA is given)
from PEM files, and the channels the services and the SDK dial with — TLS when a CA is given,
with an optional client certificate, a server-name override (for a link-emulation proxy whose
address is not in the certificate) and a bearer token as call credentials. Also the safe-default
rule: a non-loopback listener needs TLS unless `insecure` says otherwise. It does NOT check
tokens (`rpc/auth.py`) and never logs one.
"""

from __future__ import annotations

import ipaddress
import pathlib
from dataclasses import dataclass

import grpc


def _read(path: str | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return pathlib.Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{what}: cannot read {path!r} ({exc.strerror})") from None


@dataclass(frozen=True)
class ServerTls:
    """A server's certificate and key (PEM files); `client_ca` set: clients must present a
    certificate it signed (mTLS)."""

    cert: str
    key: str
    client_ca: str | None = None

    def credentials(self) -> grpc.ServerCredentials:
        pair = (_read(self.key, "tls_key"), _read(self.cert, "tls_cert"))
        ca = _read(self.client_ca, "tls_client_ca")
        return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=ca is not None)


def server_tls(cert: str | None, key: str | None, client_ca: str | None) -> ServerTls | None:
    """ServerTls from flag values (None: plaintext); ValueError names the flag missing its pair."""
    if cert is None and key is None:
        if client_ca is not None:
            raise ValueError("tls_client_ca: requiring client certificates needs --tls-cert and --tls-key")
        return None
    if cert is None or key is None:
        raise ValueError("tls_cert, tls_key: give both the certificate and its key")
    return ServerTls(cert, key, client_ca)


@dataclass(frozen=True)
class ClientSecurity:
    """How a client dials: TLS trusting `ca` (None: plaintext), presenting `cert`/`key` when the
    server wants mTLS, checking the certificate for `server_name` instead of the dialled host
    (a proxy in between), sending `token` as `authorization: Bearer` (TLS only)."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    server_name: str | None = None
    token: str | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ValueError("tls_cert, tls_key: give both the client certificate and its key")
        if self.ca is None and (self.cert or self.server_name or self.token):
            raise ValueError("tls_ca: a client certificate, a server-name override or a token needs TLS "
                             "(--tls-ca: the CA that signed the server's certificate)")

    def __repr__(self) -> str:  # never the token
        return (f"ClientSecurity(ca={self.ca!r}, cert={self.cert!r}, server_name={self.server_name!r}, "
                f"token={'set' if self.token else None})")

    def options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []

    def credentials(self) -> grpc.ChannelCredentials | None:
        if self.ca is None:
            return None
        tls = grpc.ssl_channel_credentials(_read(self.ca, "tls_ca"), _read(self.key, "tls_key"),
                                           _read(self.cert, "tls_cert"))
        if self.token is None:
            return tls
        return grpc.composite_channel_credentials(tls, grpc.access_token_call_credentials(self.token))


def aio_channel(address: str, security: ClientSecurity, options: list) -> grpc.aio.Channel:
    """A grpc.aio channel to `address` secured as `security` says."""
    credentials = security.credentials()
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, credentials, options=[*options, *security.options()])


def is_loopback(listen: str) -> bool:
    """Whether a HOST:PORT listen address is on the loopback interface only."""
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(path: str | None) -> str | None:
    """The token of a token file: the first word of its first line that is not a `#` comment
    (so a line of a server's `--auth-tokens` file, `TOKEN NAME`, works too). None: no file."""
    data = _read(path, "token_file")
    if data is None:
        return None
    for line in data.decode().splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            return words[0]
    raise ValueError(f"token_file: {path!r} holds no token")
