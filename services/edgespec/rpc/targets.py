"""Upstream addresses that may name several replicas, and the gRPC machinery that spreads
sessions over them. A `--target` (or `--draft`) value is one `HOST:PORT`, a comma-separated list
of them, or a resolver URI such as `dns:///name:port` (re-resolved by gRPC, e.g. a Kubernetes
headless Service). Every upstream channel gets a service config with `round_robin` over the
resolved addresses, client-side health checking on the service it calls (a replica that reports
NOT_SERVING — draining — or whose connection fails receives no new session), and gRPC's retry
policy for session opens (jittered exponential backoff on UNAVAILABLE, only before the stream
has answered). A session is one bidi stream, so it stays on the replica it started on.

It does NOT resume a stream that breaks mid-session (`rpc/resume.py` does, on top of this).
"""

from __future__ import annotations

import ipaddress
import json
import socket
from dataclasses import dataclass

OPEN_ATTEMPTS = 3   # gRPC attempts of one session open, the first included (a dead replica: try another)


@dataclass(frozen=True)
class Upstream:
    """A parsed upstream address: the gRPC target string to dial and how many replicas it lists
    (0 for a resolver URI, whose replicas the resolver finds)."""

    target: str
    replicas: int


def parse_upstream(value: str, flag: str = "target") -> Upstream:
    """`HOST:PORT`, `HOST:PORT,HOST:PORT,...` or a gRPC resolver URI (`dns:///name:port`,
    `ipv4:...`, `unix:...`). A list is resolved once, here, into an `ipv4:`/`ipv6:` target (use
    `dns:///` for names whose addresses change). ValueError names `flag`."""
    value = value.strip()
    if not value:
        raise ValueError(f"{flag}: expected HOST:PORT, a comma-separated list of them, or dns:///NAME:PORT")
    if ":///" in value or value.startswith(("ipv4:", "ipv6:", "unix:")):
        return Upstream(value, 0)
    parts = [part.strip() for part in value.split(",")]
    hosts = [_host_port(part, flag) for part in parts]
    if len(hosts) == 1:
        return Upstream(parts[0], 1)
    addresses = [_resolve(host, port, flag) for host, port in hosts]
    families = {ipaddress.ip_address(ip).version for ip, _ in addresses}
    if len(families) > 1:
        raise ValueError(f"{flag}: mixes IPv4 and IPv6 replicas; list one family (or use dns:///)")
    if families == {4}:
        return Upstream("ipv4:" + ",".join(f"{ip}:{port}" for ip, port in addresses), len(addresses))
    return Upstream("ipv6:" + ",".join(f"[{ip}]:{port}" for ip, port in addresses), len(addresses))


def _host_port(part: str, flag: str) -> tuple[str, int]:
    host, sep, port = part.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{flag}: expected HOST:PORT with a port in 1..65535, got {part!r}")
    return host.strip("[]"), int(port)


def _resolve(host: str, port: int, flag: str) -> tuple[str, int]:
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][0], port
    except socket.gaierror as exc:
        raise ValueError(f"{flag}: cannot resolve {host!r} ({exc.strerror})") from None


def balancing_options(service: str, methods: tuple[str, ...] = ("Session", "Info")) -> list[tuple[str, object]]:
    """Channel options for an upstream serving `service` (e.g. `edgespec.v1.Verifier`):
    round_robin over healthy replicas, and gRPC's own retry of `methods` on UNAVAILABLE."""
    config = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": service},
        "methodConfig": [{
            "name": [{"service": service, "method": method} for method in methods],
            "retryPolicy": {"maxAttempts": OPEN_ATTEMPTS, "initialBackoff": "0.1s", "maxBackoff": "0.5s",
                            "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
        }],
    }
    return [("grpc.service_config", json.dumps(config)), ("grpc.enable_retries", 1)]
