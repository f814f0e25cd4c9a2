"""GenerationRequest: one SDK `GenerateRequest` resolved once, at the orchestrator's edge, into
the session it opens (spec + rule + needs) and the draft-length policy it runs (name + config).
The servicer builds it; the sessions, the loop and the observer read it. It is NOT the wire form
(the request's fields and their meaning live in orchestrator.proto) and NOT the policy object
(a fresh one is made per request from `policy` and `policy_config`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from edgespec.core.acceptance import AcceptanceRule
from edgespec.core.draft_length import PolicyConfig
from edgespec.core.resolved_spec import ResolvedSpec
from edgespec.core.types import SessionSpec
from edgespec.models.prompting import encode_prompt
from edgespec.orchestrator.config import OrchestratorConfig
from edgespec.rpc import codec
from edgespec.v1 import orchestrator_pb2


@dataclass(frozen=True)
class GenerationRequest:
    """What one generation runs: its session and its draft-length policy."""

    session: ResolvedSpec
    policy: str                 # a name in `edgespec.core.draft_length.POLICIES`
    policy_config: PolicyConfig

    @property
    def spec(self) -> SessionSpec:
        return self.session.spec

    @property
    def rule(self) -> AcceptanceRule:
        return self.session.rule

    def with_draft_hidden(self, hidden_size: int) -> GenerationRequest:
        return replace(self, session=self.session.with_draft_hidden(hidden_size))


def resolve_request(request: orchestrator_pb2.GenerateRequest, config: OrchestratorConfig, tokenizer,
                    vocab_size: int) -> GenerationRequest:
    """Validate `request` and apply the server's defaults (ValueError names the field). The
    prompt's limits are checked here, before any model work: its length in characters before it
    is tokenized, then in tokens, and its ids against the vocabulary."""
    if bool(request.prompt) == bool(request.prompt_token_ids):
        raise ValueError("prompt: set exactly one of prompt and prompt_token_ids")
    if len(request.prompt) > config.max_prompt_chars:
        raise ValueError(f"prompt: {len(request.prompt)} characters exceed the limit of {config.max_prompt_chars}")
    if len(request.prompt_token_ids) > config.max_prompt_tokens:
        raise ValueError(f"prompt_token_ids: {len(request.prompt_token_ids)} tokens exceed the limit of "
                         f"{config.max_prompt_tokens}")
    params = codec.sampling_from_pb(request.sampling)
    acceptance = request.acceptance or ("exact" if params.greedy else "rejection")
    acceptance_params = codec.acceptance_params_from_pb(request.acceptance_params)
    max_new = request.max_new_tokens if request.HasField("max_new_tokens") else config.default_max_new_tokens
    if not 1 <= max_new <= config.max_new_tokens:
        raise ValueError(f"max_new_tokens: must be in 1..{config.max_new_tokens}, got {max_new}")
    k = request.k if request.HasField("k") else config.default_k
    k_max = request.k_max if request.HasField("k_max") else config.default_k_max
    policy_config = PolicyConfig(k=k, k_max=k_max,
                                 proactive=request.proactive,
                                 early_stop=request.early_stop or PolicyConfig.early_stop)
    ids = list(request.prompt_token_ids) or encode_prompt(tokenizer, request.prompt, request.raw)
    spec = SessionSpec(prompt_ids=tuple(ids), params=params, acceptance=acceptance, max_new_tokens=max_new,
                       acceptance_params=acceptance_params)
    field = "prompt_token_ids" if request.prompt_token_ids else "prompt"
    try:
        spec.check(vocab_size, config.max_prompt_tokens, config.max_new_tokens)
    except ValueError as exc:  # name the field the caller set (the template's tokens count too)
        raise ValueError(str(exc).replace("prompt_token_ids", field, 1)) from None
    return GenerationRequest(ResolvedSpec.of(spec), request.draft_length or config.default_policy, policy_config)
