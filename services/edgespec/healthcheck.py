"""`python -m edgespec.healthcheck HOST:PORT [--service NAME] [--timeout S] [--tls-ca PEM
[--tls-cert PEM --tls-key PEM] [--tls-server-name NAME]]`: one gRPC health probe (over TLS when
`--tls-ca` is given; health needs no token).

Calls `grpc.health.v1.Health/Check` once and exits 0 when the answer is SERVING, else 1 with one
line on stderr. Built for docker-compose `healthcheck:` and tests (grpc_health_probe is not
installable here). It is NOT a watcher, a load balancer check or a readiness gate for the model:
it imports neither torch nor the services (edgespec servers only report SERVING after loading).
"""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def _channel(address: str, tls_ca: str | None, tls_cert: str | None, tls_key: str | None,
             server_name: str | None) -> grpc.Channel:
    if tls_ca is None:
        return grpc.insecure_channel(address)
    read = lambda path: open(path, "rb").read() if path else None  # noqa: E731
    credentials = grpc.ssl_channel_credentials(read(tls_ca), read(tls_key), read(tls_cert))
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    return grpc.secure_channel(address, credentials, options=options)


def check(address: str, service: str = "", timeout: float = 3.0, tls_ca: str | None = None,
          tls_cert: str | None = None, tls_key: str | None = None, server_name: str | None = None) -> str | None:
    """None when `service` at `address` is SERVING, else a one-line reason (TLS when `tls_ca`)."""
    try:
        with _channel(address, tls_ca, tls_cert, tls_key, server_name) as channel:
            request = health_pb2.HealthCheckRequest(service=service)
            reply = health_pb2_grpc.HealthStub(channel).Check(request, timeout=timeout)
    except grpc.RpcError as exc:
        return f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return None if reply.status == health_pb2.HealthCheckResponse.SERVING else status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m edgespec.healthcheck", description=__doc__.split("\n")[0])
    parser.add_argument("address", metavar="HOST:PORT")
    parser.add_argument("--service", default="", help="service name to check ('' = the whole server)")
    parser.add_argument("--timeout", type=float, default=3.0, help="deadline for the call, s")
    parser.add_argument("--tls-ca", default=None, help="probe over TLS, trusting this CA (PEM)")
    parser.add_argument("--tls-cert", default=None, help="client certificate, for a server requiring mTLS")
    parser.add_argument("--tls-key", default=None, help="the private key of --tls-cert")
    parser.add_argument("--tls-server-name", default=None, help="expect this name in the server certificate")
    return parser


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        reason = check(a.address, a.service, a.timeout, a.tls_ca, a.tls_cert, a.tls_key, a.tls_server_name)
    except OSError as exc:
        reason = f"cannot read a TLS file: {exc}"
    if reason is None:
        return 0
    print(f"healthcheck {a.address} {a.service or '(server)'}: {reason}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
