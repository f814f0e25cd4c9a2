"""Benchmark support for `edgespec bench`: the bundled prompt set and the Hugging Face baselines.

This package holds inputs and reference peers only; it is not the benchmark runner or report writer.
"""
