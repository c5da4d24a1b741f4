"""The SpAtten algorithm in floating point: the accuracy reference for the fixed-point core.

Same control flow as `core.SpAttenCoreModel` (cascade token and head pruning, progressive
quantization, local value pruning), but with exact exponentials and division on float64, and
importance accumulated as real probabilities. Quantization here means what the hardware's
planes mean: 12-bit integers truncated to the top bits and reconstructed at the midpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from spatten_dv.models.formats import effective
from spatten_dv.models.topk import topk_indices


def softmax_float(scores: torch.Tensor) -> torch.Tensor:
    return torch.softmax(scores.to(torch.float64), dim=-1)


def attention_float(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    score_scale: float) -> torch.Tensor:
    """Dense attention: softmax(score_scale * k @ q) @ v in float64."""
    p = softmax_float((k.to(torch.float64) @ q.to(torch.float64)) * score_scale)
    return p @ v.to(torch.float64)


@dataclass
class FloatJobResult:
    out: torch.Tensor  # (D,) in V's units
    keys: torch.Tensor
    values: torch.Tensor
    probs: torch.Tensor
    lsb_fetched: bool
    max_prob_msb: float
    skipped: bool = False


@dataclass
class SpAttenFloatModel:
    """Float SpAtten with the same state as the core model."""

    max_tokens: int = 1024
    max_heads: int = 32
    token_importance: torch.Tensor = field(init=False)
    token_kept: torch.Tensor = field(init=False)
    head_importance: torch.Tensor = field(init=False)
    head_kept: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.token_importance = torch.zeros(self.max_tokens, dtype=torch.float64)
        self.token_kept = torch.ones(self.max_tokens, dtype=torch.bool)
        self.head_importance = torch.zeros(self.max_heads, dtype=torch.float64)
        self.head_kept = torch.ones(self.max_heads, dtype=torch.bool)

    def _prune(self, importance, kept, n, keep):
        candidates = torch.nonzero(kept[:n]).flatten()
        if keep and keep < candidates.numel():
            winners = candidates[topk_indices(importance[candidates], keep)]
            kept[:n] = False
            kept[winners] = True

    def run_job(self, q12: torch.Tensor, k12: torch.Tensor, v12: torch.Tensor, *,
                score_scale: float, msb_bits: int = 12, lsb_bits: int = 0, v_bits: int = 12,
                requant_thresh: float = 0.0, v_topk: int = 0, token_keep: int = 0,
                head_keep: int = 0, head_id: int = 0, n_heads: int = 1,
                clear_tokens: bool = False, clear_heads: bool = False,
                acc_tokens: bool = False, acc_heads: bool = False) -> FloatJobResult:
        """One job on integer Q/K/V of a head (k12, v12: all n_tokens rows)."""
        n = k12.shape[0]
        if clear_tokens:
            self.token_importance.zero_()
            self.token_kept.fill_(True)
        if clear_heads:
            self.head_importance.zero_()
            self.head_kept.fill_(True)
        self._prune(self.head_importance, self.head_kept, n_heads, head_keep)
        self._prune(self.token_importance, self.token_kept, n, token_keep)
        empty = torch.zeros(0, dtype=torch.int64)
        if not bool(self.head_kept[head_id]):
            return FloatJobResult(torch.zeros(q12.numel(), dtype=torch.float64), empty, empty,
                                  torch.zeros(0, dtype=torch.float64), False, 0.0, skipped=True)
        keys = torch.nonzero(self.token_kept[:n]).flatten()
        q = q12.to(torch.float64)
        k = effective(k12[keys], msb_bits).to(torch.float64)
        probs = softmax_float((k @ q) * score_scale)
        max_prob_msb = float(probs.max())
        lsb_fetched = bool(lsb_bits) and max_prob_msb < requant_thresh
        if lsb_fetched:
            k = effective(k12[keys], msb_bits + lsb_bits).to(torch.float64)
            probs = softmax_float((k @ q) * score_scale)
        if v_topk and v_topk < keys.numel():
            # Ties are measure-zero in float; rank on the value with the index tie rule anyway.
            picked = torch.sort(torch.sort(probs, descending=True, stable=True)
                                .indices[:v_topk]).values
        else:
            picked = torch.arange(keys.numel())
        v = effective(v12[keys[picked]], v_bits).to(torch.float64)
        out = probs[picked] @ v
        if acc_tokens:
            self.token_importance[keys] += probs
        if acc_heads:
            self.head_importance[head_id] += float(out.abs().sum())
        return FloatJobResult(out, keys, keys[picked], probs, lsb_fetched, max_prob_msb)
