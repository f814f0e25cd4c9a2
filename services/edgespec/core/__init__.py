"""The pure algorithm core of edgespec: types, sampling, acceptance rules, draft-length policies,
the speculative decoding loop and its statistics. Imports only the standard library and torch —
never grpc, protobuf, transformers or opentelemetry (tests/test_layering.py enforces it).

Glossary (paper notation, Leviathan et al. 2023; used in code, protos and metrics alike):
  q           the draft model's distribution (the small model on the edge device).
  p           the target model's distribution (the large verifier).
  k           draft length: tokens proposed in one round.
  accepted    leading draft tokens the target keeps in a round (0..k).
  bonus       the extra token sampled from p_{k+1} when all k drafts are accepted.
  correction  the token that replaces the first rejected draft: argmax p_j (exact rule) or a
              sample from norm(max(0, p_j - q_j)) (rejection rule).
  committed   accepted drafts + the bonus or correction: 1..k+1 tokens per round.
  tau         mean accepted length: committed tokens per round (= per target forward pass),
              the bonus/correction INCLUDED, so 1 <= tau <= k+1.
  acceptance rate  accepted / drafted tokens.
"""
