"""The orchestrator: the SDK-facing `edgespec.v1.Orchestrator` service that drives the rounds."""
