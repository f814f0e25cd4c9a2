"""The full gRPC names of edgespec's three services, read from the wire contract: what servers
register with health and reflection, what clients health-check and configure retries for."""

from edgespec.v1 import draft_pb2, orchestrator_pb2, target_pb2

VERIFIER_SERVICE = target_pb2.DESCRIPTOR.services_by_name["Verifier"].full_name
DRAFTER_SERVICE = draft_pb2.DESCRIPTOR.services_by_name["Drafter"].full_name
ORCHESTRATOR_SERVICE = orchestrator_pb2.DESCRIPTOR.services_by_name["Orchestrator"].full_name
