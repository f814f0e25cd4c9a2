"""All conversion between protobuf messages and core dataclasses, with validation that names the
offending field (ValueError -> INVALID_ARGUMENT). Domain types never import the wire format.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from edgespec.core.acceptance_params import AcceptanceParams
from edgespec.core.stats import SpecDecodeStats
from edgespec.core.types import (Channel, Distribution, DraftPlan, EntropyStop, Proposal,
                                  SamplingParams, SessionSpec, SessionStateError, TopQ, Verdict,
                                  check_prompt_length)
from edgespec.v1 import common_pb2, draft_pb2, orchestrator_pb2, target_pb2

_NUMPY = {common_pb2.DTYPE_FLOAT16: np.float16, common_pb2.DTYPE_FLOAT32: np.float32,
          common_pb2.DTYPE_INT32: np.int32}
MAX_TENSOR_DIMS = 8  # no tensor on the wire has more; numpy's own limit (64) would speak in its words
_DTYPE_OF = {torch.float16: common_pb2.DTYPE_FLOAT16, torch.float32: common_pb2.DTYPE_FLOAT32,
             torch.int32: common_pb2.DTYPE_INT32}


def tensor_to_pb(t: torch.Tensor) -> common_pb2.Tensor:
    """Pack a float16/float32/int32 tensor as little-endian bytes."""
    array = t.detach().cpu().contiguous().numpy()
    little = np.asarray(array, dtype=array.dtype.newbyteorder("<"))  # no copy on little-endian hosts
    return common_pb2.Tensor(dtype=_DTYPE_OF[t.dtype], shape=list(t.shape), data=little.tobytes())


def tensor_from_pb(pb: common_pb2.Tensor, field: str) -> torch.Tensor:
    """Unpack a Tensor, checking dtype and that the byte count matches the shape."""
    if pb.dtype not in _NUMPY:
        raise ValueError(f"{field}.dtype: unsupported dtype {pb.dtype}")
    if len(pb.shape) > MAX_TENSOR_DIMS:
        raise ValueError(f"{field}.shape: at most {MAX_TENSOR_DIMS} dimensions, got {len(pb.shape)}")
    dtype = np.dtype(_NUMPY[pb.dtype]).newbyteorder("<")
    expected = math.prod(pb.shape) * dtype.itemsize
    if len(pb.data) != expected:
        raise ValueError(f"{field}: {len(pb.data)} bytes do not match shape {list(pb.shape)} "
                         f"({expected} bytes expected)")
    array = np.frombuffer(pb.data, dtype=dtype).astype(dtype.newbyteorder("="))  # one writable copy
    return torch.from_numpy(array.reshape(tuple(pb.shape)))


def sampling_from_pb(pb: common_pb2.SamplingParams) -> SamplingParams:
    top_p = pb.top_p if pb.HasField("top_p") else 1.0
    return SamplingParams(temperature=pb.temperature, top_k=pb.top_k, top_p=top_p, seed=pb.seed)


def sampling_to_pb(params: SamplingParams) -> common_pb2.SamplingParams:
    return common_pb2.SamplingParams(temperature=params.temperature, top_k=params.top_k,
                                     top_p=params.top_p, seed=params.seed)


def distribution_to_pb(dist: Distribution) -> common_pb2.Distribution:
    pb = common_pb2.Distribution(vocab_size=dist.vocab_size, probs=tensor_to_pb(dist.probs.float()))
    if dist.indices is not None:
        pb.indices.CopyFrom(tensor_to_pb(dist.indices.to(torch.int32)))
    return pb


def distribution_from_pb(pb: common_pb2.Distribution, vocab_size: int) -> Distribution:
    if pb.vocab_size != vocab_size:
        raise ValueError(f"residual_p.vocab_size: {pb.vocab_size} != draft vocabulary {vocab_size}")
    probs = tensor_from_pb(pb.probs, "residual_p.probs").float().flatten()
    if not (bool(torch.isfinite(probs).all()) and bool((probs >= 0).all()) and float(probs.sum()) > 0):
        raise ValueError("residual_p.probs: probabilities must be finite, >= 0 and not all zero")
    if not pb.HasField("indices"):
        if probs.numel() != vocab_size:
            raise ValueError(f"residual_p.probs: dense distribution needs {vocab_size} values")
        return Distribution(vocab_size, probs)
    indices = tensor_from_pb(pb.indices, "residual_p.indices").long().flatten()
    if indices.numel() != probs.numel() or (indices.numel() and not 0 <= int(indices.min()) <= int(indices.max()) < vocab_size):
        raise ValueError("residual_p.indices: must be one id in [0, vocab_size) per probability")
    return Distribution(vocab_size, probs, indices)


def acceptance_params_to_pb(params: AcceptanceParams) -> common_pb2.AcceptanceParams:
    return common_pb2.AcceptanceParams(**dataclasses.asdict(params))


def acceptance_params_from_pb(pb: common_pb2.AcceptanceParams) -> AcceptanceParams:
    """Unset fields take their defaults; ValueError names `acceptance_params.<field>`."""
    names = [f.name for f in dataclasses.fields(AcceptanceParams)]
    return AcceptanceParams(**{name: getattr(pb, name) for name in names if pb.HasField(name)})


def top_q_from_pb(pb: common_pb2.TopProbs, k: int, vocab_size: int) -> TopQ:
    ids = tensor_from_pb(pb.indices, "top_q.indices").long()
    probs = tensor_from_pb(pb.probs, "top_q.probs").float()
    if ids.dim() != 2 or ids.shape[0] != k or ids.shape != probs.shape:
        raise ValueError(f"top_q: expected indices and probs of shape [{k}, n], got "
                         f"{list(ids.shape)} and {list(probs.shape)}")
    if ids.numel() and not 0 <= int(ids.min()) <= int(ids.max()) < vocab_size:
        raise ValueError(f"top_q.indices: ids must be in [0, {vocab_size})")
    if not (bool(torch.isfinite(probs).all()) and bool((probs >= 0).all())
            and bool((probs.sum(-1) <= 1.0 + 1e-3).all())):
        raise ValueError("top_q.probs: probabilities must be finite, >= 0, and sum to <= 1 per row")
    return TopQ(ids, probs)


def proposal_to_pb(p: Proposal, session_id: str, hidden: bool = True) -> common_pb2.DraftBlock:
    """Encode a block; `hidden` False leaves the hidden states out (mismatch-first upload)."""
    pb = common_pb2.DraftBlock(session_id=session_id, round=p.round, token_ids=list(p.tokens),
                               q_probs=list(p.q_probs), entropies=list(p.entropies), draft_ms=p.draft_ms,
                               predrafted=p.predrafted, trace_context=p.trace_context)
    if hidden and p.hidden_states is not None:
        pb.hidden_states.CopyFrom(tensor_to_pb(p.hidden_states.to(torch.float16)))
    if p.top_q is not None:
        pb.top_q.CopyFrom(common_pb2.TopProbs(indices=tensor_to_pb(p.top_q.indices.to(torch.int32)),
                                              probs=tensor_to_pb(p.top_q.probs.float())))
    if p.channel is not None:
        pb.rtt_ms, pb.uplink_bps = p.channel.rtt_ms, p.channel.uplink_bps
    if p.correction is not None:
        pb.correction = p.correction
    return pb


def proposal_from_pb(pb: common_pb2.DraftBlock, hidden_size: int | None, vocab_size: int = 0) -> Proposal:
    """Decode a block; `hidden_size` is the declared draft d (None: hidden states not expected
    inside blocks); `vocab_size` bounds the top_q ids (0: not checked here)."""
    k = len(pb.token_ids)
    hidden = None
    if pb.HasField("hidden_states"):
        if hidden_size is None:
            raise ValueError("hidden_states: the session was not opened with send_hidden_states")
        hidden = tensor_from_pb(pb.hidden_states, "hidden_states")
    proposal = Proposal(round=pb.round, tokens=tuple(pb.token_ids), q_probs=tuple(pb.q_probs),
                        entropies=tuple(pb.entropies), hidden_states=hidden,
                        correction=pb.correction if pb.HasField("correction") else None,
                        draft_ms=pb.draft_ms, predrafted=min(pb.predrafted, k), trace_context=dict(pb.trace_context))
    proposal.check(hidden_size)
    top_q = top_q_from_pb(pb.top_q, k, vocab_size or 2**31) if pb.HasField("top_q") else None
    channel = Channel(rtt_ms=pb.rtt_ms, uplink_bps=pb.uplink_bps) if pb.HasField("rtt_ms") else None
    return dataclasses.replace(proposal, top_q=top_q, channel=channel)


def hidden_rows_from_pb(pb: target_pb2.HiddenUpload, round_: int, rows: int, hidden_size: int) -> torch.Tensor:
    """The requested hidden states [rows, d] of a mismatch-first upload."""
    if pb.round != round_:  # out of order, like a block's round: FAILED_PRECONDITION
        raise SessionStateError(f"hidden.round: expected {round_}, got {pb.round}")
    hidden = tensor_from_pb(pb.hidden_states, "hidden.hidden_states")
    if tuple(hidden.shape) != (rows, hidden_size) or hidden.dtype != torch.float16:
        raise ValueError(f"hidden.hidden_states: expected float16 [{rows}, {hidden_size}], got "
                         f"{str(hidden.dtype).removeprefix('torch.')} {list(hidden.shape)}")
    return hidden


def plan_to_pb(plan: DraftPlan) -> draft_pb2.ProposeRequest:
    pb = draft_pb2.ProposeRequest(k=plan.k, ahead=plan.ahead, trace_context=plan.trace_context)
    if plan.stop is not None:
        pb.stop_entropy, pb.stop_keep_trigger = plan.stop.max_entropy, plan.stop.keep_trigger
    return pb


def plan_from_pb(pb: draft_pb2.ProposeRequest) -> DraftPlan:
    """Decode a propose request (ValueError names k, ahead or stop_entropy)."""
    stop = (EntropyStop(pb.stop_entropy, pb.stop_keep_trigger) if pb.HasField("stop_entropy") else None)
    return DraftPlan(k=pb.k, stop=stop, ahead=pb.ahead, trace_context=dict(pb.trace_context))


def verdict_to_pb(v: Verdict, rounds: int = 0, draining: bool = False) -> common_pb2.Verdict:
    """Encode a verdict; `rounds` and `draining` are the target's to report (its session's round
    count, its shutdown), so a verdict forwarded to the draft leaves them unset."""
    pb = common_pb2.Verdict(round=v.round, accepted=v.accepted, verify_ms=v.verify_ms, draining=draining,
                            relaxed_accepted=v.relaxed_accepted, queue_ms=v.queue_ms, counters=common_pb2.SessionCounters(forward_passes=v.target_forward_passes,
                                                                rounds=rounds))
    if v.token is not None:
        pb.token = v.token
    else:
        pb.residual_p.CopyFrom(distribution_to_pb(v.residual_p))
    return pb


def verdict_from_pb(pb: common_pb2.Verdict, vocab_size: int, bytes_up: int = 0,
                    bytes_down: int = 0) -> Verdict:
    residual = distribution_from_pb(pb.residual_p, vocab_size) if pb.HasField("residual_p") else None
    if pb.HasField("token") and not 0 <= pb.token < vocab_size:
        raise ValueError(f"token: {pb.token} is outside the vocabulary [0, {vocab_size})")
    if pb.HasField("token") == (residual is not None):
        raise ValueError("token: a verdict carries exactly one of token and residual_p")
    return Verdict(round=pb.round, accepted=pb.accepted,
                   token=pb.token if pb.HasField("token") else None, residual_p=residual,
                   verify_ms=pb.verify_ms, target_forward_passes=pb.counters.forward_passes,
                   bytes_up=bytes_up, bytes_down=bytes_down, relaxed_accepted=min(pb.relaxed_accepted, pb.accepted),
                   queue_ms=pb.queue_ms)


def stats_to_pb(stats: SpecDecodeStats) -> orchestrator_pb2.GenerationStats:
    d = stats.to_dict()
    timings = {name: orchestrator_pb2.Percentiles(**d.pop(name)) for name in
               ("draft_ms", "verify_ms", "round_trip_ms")}
    return orchestrator_pb2.GenerationStats(**d, **timings)


def spec_to_pb(spec: SessionSpec) -> common_pb2.SessionOpen:
    return common_pb2.SessionOpen(
        prompt_token_ids=list(spec.prompt_ids), sampling=sampling_to_pb(spec.params),
        acceptance=spec.acceptance, max_new_tokens=spec.max_new_tokens,
        send_hidden_states=spec.send_hidden_states, draft_hidden_size=spec.draft_hidden_size,
        acceptance_params=acceptance_params_to_pb(spec.acceptance_params))


def spec_from_pb(pb: common_pb2.SessionOpen, max_prompt_tokens: int | None = None) -> SessionSpec:
    """The session spec; with `max_prompt_tokens`, an over-long prompt is refused (ValueError)
    before its ids become Python objects (a 16 MiB message holds 16M of them)."""
    if max_prompt_tokens is not None:
        check_prompt_length(len(pb.prompt_token_ids), max_prompt_tokens)
    return SessionSpec(prompt_ids=tuple(pb.prompt_token_ids), params=sampling_from_pb(pb.sampling),
                       acceptance=pb.acceptance, max_new_tokens=pb.max_new_tokens,
                       send_hidden_states=pb.send_hidden_states, draft_hidden_size=pb.draft_hidden_size,
                       acceptance_params=acceptance_params_from_pb(pb.acceptance_params))
