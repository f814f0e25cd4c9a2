"""Transport: the only package that imports grpc and the generated stubs — codec, interceptors,
server scaffolding, session registry and the Remote drafter/verifier proxies."""
