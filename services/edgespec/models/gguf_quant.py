"""Re-quantizing a GGUF with llama.cpp's own `llama_model_quantize` (no separate tool): the
llama.cpp draft runtime runs the shipped SmolLM2 Q4_1 / Gemma-3 Q4_K_M files as Q8_0, whose
repacked AVX-512/VNNI kernels decode faster on x86 than Q4_1's generic path at the same
top-1 agreement. The result is cached next to the converted target weights, written atomically.
This module loads no model and runs no forward pass.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from types import MappingProxyType

from edgespec.models.llamacpp import llama_cpp_module

# llama_ftype values (llama.h); "source" keeps the GGUF as shipped
QUANTS = MappingProxyType({"q8_0": 7, "q4_0": 2, "q4_1": 3, "f16": 1})


def quantize(source: Path, dest: Path, quant: str, threads: int = 1) -> Path:
    """`dest`, writing it from `source` as `quant` unless it exists (readers never see half a file)."""
    if quant not in QUANTS:
        raise ValueError(f"quant: {quant!r} is not one of {sorted(QUANTS)}")
    if dest.is_file():
        return dest
    lib = llama_cpp_module()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    params = lib.llama_model_quantize_default_params()
    params.nthread, params.ftype, params.allow_requantize = max(1, threads), QUANTS[quant], True
    try:
        status = lib.llama_model_quantize(str(source).encode(), str(tmp).encode(), ctypes.byref(params))
        if status != 0:
            raise RuntimeError(f"llama_model_quantize {source} -> {quant} failed with status {status}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest
