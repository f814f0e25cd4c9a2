"""`python -m edgespec.healthcheck HOST:PORT [--service NAME] [--timeout S]`: one gRPC health probe.

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


def check(address: str, service: str = "", timeout: float = 3.0) -> str | None:
    """None when `service` at `address` is SERVING, else a one-line reason."""
    try:
        with grpc.insecure_channel(address) as channel:
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
    return parser


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if (reason := check(a.address, a.service, a.timeout)) is None:
        return 0
    print(f"healthcheck {a.address} {a.service or '(server)'}: {reason}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
