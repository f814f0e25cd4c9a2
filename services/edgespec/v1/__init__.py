"""Generated gRPC/protobuf stubs of the edgespec.v1 wire contract (see protos/).

Regenerate with `make protos`; never edit by hand. This package is the only part of `edgespec`
the client SDK imports.
"""
