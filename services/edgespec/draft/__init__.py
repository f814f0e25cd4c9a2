"""The draft service: the small model q on the edge device behind `edgespec.v1.Drafter`
(and, by default, the orchestrator in the same process)."""
