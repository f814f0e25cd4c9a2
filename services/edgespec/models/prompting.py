"""Prompt text -> token ids: the model's chat template (one user turn, generation prompt added)
unless `raw` or the tokenizer has none. Shared by the orchestrator and the benchmark."""

from __future__ import annotations


def encode_prompt(tokenizer, prompt: str, raw: bool = False) -> list[int]:
    if raw or not getattr(tokenizer, "chat_template", None):
        return list(tokenizer.encode(prompt, add_special_tokens=False))
    messages = [{"role": "user", "content": prompt}]
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                              return_dict=False))
