"""OrchestratorServicer: `Generate` — validate and tokenize the request, open a target session and
a draft session, run the core loop, stream each round's tokens, then the final stats. The loop is
`edgespec.core.loop.generate`, the same function tests run in-process.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator

import grpc
from opentelemetry import trace
from opentelemetry.context import Context

from edgespec.core.channel import ChannelMeter
from edgespec.core.draft_length import LinkEstimates, make_policy
from edgespec.core.loop import generate
from edgespec.core.resolved_spec import ResolvedSpec
from edgespec.core.stats import SpecDecodeStats
from edgespec.core.types import Drafter
from edgespec.orchestrator.backends import DraftBackend
from edgespec.orchestrator.config import OrchestratorConfig
from edgespec.orchestrator.detokenizer import IncrementalDetokenizer
from edgespec.orchestrator.request import GenerationRequest, resolve_request
from edgespec.rpc import codec
from edgespec.rpc.caller import caller_of
from edgespec.rpc.remote import RemoteVerifier, StreamLimits
from edgespec.rpc.resume import ResumingVerifier, reopener
from edgespec.rpc.sessions import SessionLimitError
from edgespec.telemetry.round_observer import SessionObserver
from edgespec.telemetry.runtime import Telemetry
from edgespec.telemetry.span_attrs import SpanAttr
from edgespec.telemetry.tracing import context_from
from edgespec.v1 import orchestrator_pb2, orchestrator_pb2_grpc


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServicer):
    """Drives speculative decoding for SDK requests."""

    def __init__(self, config: OrchestratorConfig, tokenizer, eos_token_ids: tuple[int, ...],
                 target_channel: grpc.aio.Channel, drafts: DraftBackend, telemetry: Telemetry) -> None:
        self.config, self.tokenizer, self.eos_token_ids = config, tokenizer, eos_token_ids
        self.target_channel, self.drafts, self.telemetry = target_channel, drafts, telemetry
        self.limits = StreamLimits(session_timeout_s=config.session_timeout_s,
                                   round_timeout_s=config.round_timeout_s)
        self.live = 0
        self.by_caller: collections.Counter[str] = collections.Counter()   # live generations per caller
        telemetry.metrics.live_sessions.labels(service="orchestrator").set_function(lambda: self.live)
        self.link = LinkEstimates()  # one draft->target link: learned once, used by every request

    async def Generate(self, request: orchestrator_pb2.GenerateRequest,
                       context: grpc.aio.ServicerContext) -> AsyncIterator[orchestrator_pb2.GenerateResponse]:
        resolved = resolve_request(request, self.config, self.tokenizer, await self.drafts.vocab_size())
        resolved = await self._with_hidden(resolved)
        policy = make_policy(resolved.policy, resolved.policy_config, self.link)
        rule, spec = resolved.rule, resolved.spec
        channel = ChannelMeter() if resolved.session.needs.channel else None
        caller = caller_of(context)
        if self.live >= self.config.max_sessions:
            raise SessionLimitError(f"orchestrator busy ({self.live} live generations); retry later")
        if caller and self.by_caller[caller] >= self.config.per_caller_cap:
            raise SessionLimitError(f"session limit per caller reached ({self.by_caller[caller]} live generations "
                                    f"of {self.config.per_caller_cap} allowed); retry later")
        self.live += 1
        self.by_caller[caller] += 1
        stats, detok, finish = SpecDecodeStats(), IncrementalDetokenizer(self.tokenizer), "length"
        observer = self._observer(resolved, context)
        verifier = drafter = error = None
        try:
            verifier, drafter = await self._open_sessions(resolved.session)
            observer.bind(verifier.session_id)
            stops = () if request.ignore_eos else self.eos_token_ids
            async for step in generate(drafter, verifier, policy, spec.max_new_tokens, stops, channel, observer):
                stats.observe(step)
                finish = step.finish_reason or finish
                chunk = orchestrator_pb2.Chunk(token_ids=list(step.tokens), text=detok.add(step.tokens),
                                               relaxed_accepted=step.relaxed_accepted)
                yield orchestrator_pb2.GenerateResponse(chunk=chunk)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.live -= 1
            self.by_caller[caller] -= 1
            if not self.by_caller[caller]:
                del self.by_caller[caller]
            stats.resumes = sum(getattr(s, "resumes", 0) for s in (verifier, drafter))
            observer.finish(stats, finish, error)
            for session in (drafter, verifier):
                if session is not None:
                    await session.close()
        yield orchestrator_pb2.GenerateResponse(final=orchestrator_pb2.Final(
            text=detok.text, token_ids=detok.ids, prompt_token_ids=list(spec.prompt_ids),
            finish_reason=finish, acceptance=rule.name, lossless=rule.lossless,
            stats=codec.stats_to_pb(stats)))

    def _observer(self, resolved: GenerationRequest, context: grpc.aio.ServicerContext) -> SessionObserver:
        """This generation's `session` span (in the caller's trace) and the observer of its rounds."""
        rule, spec = resolved.rule, resolved.spec
        attributes = {SpanAttr.RULE: rule.name, SpanAttr.LOSSLESS: rule.lossless,
                      SpanAttr.PROMPT_TOKENS: len(spec.prompt_ids), SpanAttr.MAX_NEW_TOKENS: spec.max_new_tokens,
                      SpanAttr.POLICY: resolved.policy}
        return self.telemetry.session(_parent_context(context), attributes, rule.name, rule.lossless)

    async def _open_sessions(self, session: ResolvedSpec) -> tuple[ResumingVerifier, Drafter]:
        """Open the target and draft sessions concurrently, so the two prefills overlap."""
        opened = await asyncio.gather(self._open_target(session), self.drafts.open(session), return_exceptions=True)
        failures = [o for o in opened if isinstance(o, BaseException)]
        if failures:
            for session in opened:
                if not isinstance(session, BaseException):
                    await session.close()
            raise failures[0]
        return opened[0], opened[1]

    async def _open_target(self, session: ResolvedSpec) -> ResumingVerifier:
        """A target session on a healthy replica, resumed on one when its stream breaks."""
        verifier = await RemoteVerifier.open(self.target_channel, session, self.limits)
        reopen = reopener(RemoteVerifier.open, self.target_channel, self.limits, self.config.resume)
        return ResumingVerifier(verifier, session, reopen, self.config.resume)

    async def _with_hidden(self, resolved: GenerationRequest) -> GenerationRequest:
        """Ask the draft for its hidden states when the session's rule reads them."""
        if not resolved.session.needs.draft_hidden:
            return resolved
        return resolved.with_draft_hidden(await self.drafts.hidden_size())


def _parent_context(context: grpc.aio.ServicerContext) -> Context | None:
    """The caller's trace: the gRPC instrumentation's RPC span when it is on (it is current),
    else the W3C context the SDK sent in the call metadata."""
    if trace.get_current_span().get_span_context().is_valid:
        return None
    return context_from({key: value for key, value in context.invocation_metadata() or ()
                         if isinstance(value, str)})
