"""Every server answers gRPC server reflection (so grpcurl works) and the health service for each
of its services."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


async def _listed_services(address: str) -> set[str]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for response in stub.ServerReflectionInfo(iter([request]), timeout=10):
            return {s.name for s in response.list_services_response.service}
    return set()


async def _health(address: str, service: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=10)
        return reply.status


async def test_reflection_and_health_on_every_server(stack):
    expected = {stack.target_address: {"edgespec.v1.Verifier"},
                stack.draft_address: {"edgespec.v1.Drafter", "edgespec.v1.Orchestrator"}}
    for address, services in expected.items():
        listed = await _listed_services(address)
        assert services | {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= listed
        for service in services:
            assert await _health(address, service) == health_pb2.HealthCheckResponse.SERVING
