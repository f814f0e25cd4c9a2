"""The target verifier service: the large model p behind `edgespec.v1.Verifier`."""
