"""`edgespec trace-sink`: an OTLP/gRPC trace receiver (the TraceService of the stubs
`opentelemetry-proto` ships) that appends every span it receives to a JSONL file, one flat
object per span (the schema `span_file.py` reads). It stands in for Jaeger where no
collector can be installed; it keeps nothing in memory and does no analysis.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections.abc import Iterator
from typing import IO

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from edgespec.rpc.server import ServerOptions, start_server

log = logging.getLogger(__name__)
KINDS = {v: k.removeprefix("SPAN_KIND_").replace("UNSPECIFIED", "INTERNAL")
         for k, v in trace_pb2.Span.SpanKind.items()}
STATUSES = {v: k.removeprefix("STATUS_CODE_") for k, v in trace_pb2.Status.StatusCode.items()}


def any_value(value: common_pb2.AnyValue) -> object:
    """An OTLP AnyValue as plain JSON (arrays and maps recursively)."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return None if kind is None else getattr(value, kind)


def attributes(pairs) -> dict[str, object]:
    return {kv.key: any_value(kv.value) for kv in pairs}


def flatten(request: trace_service_pb2.ExportTraceServiceRequest) -> Iterator[dict]:
    """One JSON-ready dict per span of an export request."""
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        service = str(resource.get("service.name", "unknown"))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield {
                    "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex() or None, "name": span.name,
                    "kind": KINDS.get(span.kind, "INTERNAL"), "service": service,
                    "start_ns": span.start_time_unix_nano, "end_ns": span.end_time_unix_nano,
                    "attributes": attributes(span.attributes),
                    "events": [{"name": e.name, "time_ns": e.time_unix_nano, "attributes": attributes(e.attributes)}
                               for e in span.events],
                    "status": STATUSES.get(span.status.code, "UNSET"),
                    "scope": scope_spans.scope.name,
                }


class TraceSink(trace_service_pb2_grpc.TraceServiceServicer):
    """Appends received spans to `out` (flushed per export, so a reader sees whole lines)."""

    def __init__(self, out: IO[str]) -> None:
        self.out, self.spans = out, 0

    async def Export(self, request, context) -> trace_service_pb2.ExportTraceServiceResponse:
        lines = [json.dumps(span, separators=(",", ":")) for span in flatten(request)]
        if lines:
            self.out.write("\n".join(lines) + "\n")
            self.out.flush()
            self.spans += len(lines)
        return trace_service_pb2.ExportTraceServiceResponse()


SERVICE = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name


async def start_sink(out: IO[str], listen: str, ready_file: str | None = None, insecure: bool = False):
    """Start the receiver; returns (RunningServer, TraceSink). Plaintext: a non-loopback `listen`
    needs `insecure` (a stand-in collector on a private network, as compose's `jaeger`)."""
    sink = TraceSink(out)

    def register(server: grpc.aio.Server) -> list[str]:
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, server)
        return [SERVICE]
    running = await start_server(ServerOptions(listen=listen, ready_file=ready_file, grace_s=1.0, insecure=insecure),
                                 register)
    return running, sink


async def serve(out_path: str, listen: str, ready_file: str | None, insecure: bool = False) -> int:
    with open(out_path, "a", encoding="utf-8") as out:
        running, sink = await start_sink(out, listen, ready_file, insecure)
        print(f"trace-sink: OTLP/gRPC on {running.address}, appending spans to {out_path} "
              f"(export with OTEL_EXPORTER_OTLP_ENDPOINT=http://{running.address})", flush=True)
        await running.wait_for_signal()
        print(f"trace-sink: {sink.spans} spans written", flush=True)
    return 0


def add_trace_sink_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", default="127.0.0.1:4317", help="HOST:PORT of the OTLP/gRPC receiver")
    p.add_argument("--out", default="spans.jsonl", help="JSONL file spans are appended to")
    p.add_argument("--ready-file", default=None, help="write the bound HOST:PORT here once serving")
    p.add_argument("--insecure", action="store_true",
                   help="allow the plaintext receiver on a non-loopback --listen (a private network only)")


def run_trace_sink(args: argparse.Namespace) -> int:
    return asyncio.run(serve(args.out, args.listen, args.ready_file, args.insecure))


