"""What sampling sees of a lossy mode: guided logits of a candidate against the exact (fp32) path, per step.

MusicGen samples at temperature 1 from the top 250 of the CFG-guided logits (guidance 3), one code per codebook
and step. So a lossy mode is measured on exactly that distribution, step by step, against fp32 on one history
(teacher forcing: both see the same codes):
- kl: KL(p || q) per step and codebook, nats, where p is the reference's top-k distribution and q the candidate's
  logits renormalised over the reference's top-k set (the tokens sampling could draw; a candidate that moves
  mass out of that set shows in top_k_overlap instead of an infinite KL); mean and 99th percentile;
- top_k_overlap: the fraction of the reference's top-k tokens also in the candidate's top k;
- agreement: argmax agreement (the greedy decode's view; a near-tie flips it without changing what is sampled).

A noise floor makes the figures readable: bf16 weights and cache against fp32 (`Fidelity.within`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

TOP_K = 250  # audiocraft's and our default sampling
GUIDANCE = 3.0


@dataclass(frozen=True)
class Fidelity:
    """A candidate's guided logits against the reference's over the same steps (see the module docstring)."""

    kl: float
    kl_p99: float
    top_k_overlap: float
    agreement: float
    steps: int  # steps x codebooks x rows compared

    def within(self, floor: Fidelity, factor: float, min_kl: float, min_agreement: float) -> bool:
        """mean KL at most factor x the floor's (or min_kl where that is larger: a near-exact floor must not refuse
        a mode whose error is far below anything sampling shows), and argmax agreement at least min_agreement,
        unless the KL is under min_kl (then the flips are between near-ties: the distribution is the same)."""
        return self.kl <= max(factor * floor.kl, min_kl) and (self.agreement >= min_agreement or self.kl <= min_kl)

    def row(self) -> dict:
        return {key: round(value, 6) if isinstance(value, float) else value for key, value in asdict(self).items()}


def compare(reference: Tensor, candidate: Tensor, top_k: int = TOP_K) -> Fidelity:
    """reference, candidate (..., V) guided logits of the same steps -> Fidelity (top_k as sampling uses it)."""
    ref = reference.float().reshape(-1, reference.shape[-1])
    cand = candidate.float().reshape(-1, candidate.shape[-1])
    k = min(top_k, ref.shape[-1])
    ref_top, ref_index = ref.topk(k, dim=-1)
    log_p = torch.log_softmax(ref_top, dim=-1)
    log_q = torch.log_softmax(cand.gather(-1, ref_index), dim=-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1).clamp_min(0.0)
    cand_index = cand.topk(k, dim=-1).indices
    overlap = torch.zeros_like(ref, dtype=torch.bool).scatter_(-1, ref_index, True).gather(-1, cand_index)
    return Fidelity(
        kl=kl.mean().item(), kl_p99=torch.quantile(kl, 0.99).item() if kl.numel() > 1 else kl.max().item(),
        top_k_overlap=overlap.float().mean().item(),
        agreement=(ref.argmax(-1) == cand.argmax(-1)).float().mean().item(), steps=ref.shape[0])
