"""The fixed-point softmax of the core (docs/architecture.md, section 4.4).

scores (Q.K integers) -> unsigned Q1.15 probabilities, through a base-2 exponent:
    d_i = max(s) - s_i                      (>= 0, 31 bits)
    e_i = (d_i * score_mult) >> score_shift (Q.8 base-2 exponent: e_i/256 = log2 of the ratio)
    u_i = LUT[e_i & 255] >> (e_i >> 8)      (0 when e_i >> 8 >= 16)
    S   = sum u_i                           (2^15 <= S <= 2^25)
    R   = floor(2^40 / S)
    p_i = (u_i * R + 2^24) >> 25            (0..32768)
Works on the last dimension; leading dimensions are a batch (e.g. heads).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from spatten_dv.models.exp2 import ONE, exp2_neg
from spatten_dv.models.params import RECIP_BITS, RECIP_SHIFT


@dataclass(frozen=True)
class SoftmaxResult:
    probs: torch.Tensor  # int64, Q1.15, same shape as the scores
    exp_terms: torch.Tensor  # u_i
    exp_sum: torch.Tensor  # S, one per batch row
    reciprocal: torch.Tensor  # R
    max_index: torch.Tensor  # position of the first maximum score
    max_prob: torch.Tensor  # p of the maximum score


def probability(u, reciprocal):
    """p = (u * R + 2^24) >> 25: the normalisation multiplier of the output stage."""
    return (u * reciprocal + (1 << (RECIP_SHIFT - 1))) >> RECIP_SHIFT


def softmax_fixed(scores: torch.Tensor, score_mult: int, score_shift: int) -> SoftmaxResult:
    """Softmax over the last dimension of int64 scores, bit-exact to the RTL."""
    scores = torch.as_tensor(scores)
    if scores.dtype.is_floating_point:
        raise TypeError("scores must be integers (Q.K dot products)")
    scores = scores.to(torch.int64)
    if scores.ndim == 0 or scores.shape[-1] == 0:
        raise ValueError(f"scores must have at least one token, got shape {tuple(scores.shape)}")
    if not 0 <= score_mult < 1 << 16 or not 0 <= score_shift < 64:
        raise ValueError("score_mult must fit 16 bits and score_shift 6 bits")
    top, max_index = scores.max(dim=-1, keepdim=True)  # torch returns the first maximum
    e = ((top - scores) * score_mult) >> score_shift
    u = exp2_neg(e)
    total = u.sum(dim=-1, keepdim=True)
    reciprocal = (1 << RECIP_BITS) // total
    probs = probability(u, reciprocal)
    return SoftmaxResult(
        probs=probs,
        exp_terms=u,
        exp_sum=total.squeeze(-1),
        reciprocal=reciprocal.squeeze(-1),
        max_index=max_index.squeeze(-1),
        max_prob=probability(torch.full_like(total, ONE), reciprocal).squeeze(-1),
    )


def score_scale(real_per_unit: float) -> tuple[int, int]:
    """(score_mult, score_shift) for a natural-log score of `real_per_unit` per Q.K unit.

    `real_per_unit` is s_q * s_k / sqrt(D) for quantisation scales s_q, s_k. The core works in
    base 2 with 8 fractional bits, so the factor to encode is real_per_unit * log2(e) * 256,
    as mult / 2^shift with mult < 2^16 and the largest shift below 64 that allows it.
    """
    if not real_per_unit > 0 or math.isinf(real_per_unit):
        raise ValueError(f"score scale must be positive and finite, got {real_per_unit}")
    factor = real_per_unit * math.log2(math.e) * 256
    shift = 0
    while shift < 63 and round(factor * 2 ** (shift + 1)) < (1 << 16):
        shift += 1
    mult = int(round(factor * 2**shift))
    if mult >= 1 << 16:
        raise ValueError(f"score scale {real_per_unit} is too large for a 16-bit multiplier")
    if mult == 0:
        raise ValueError(f"score scale {real_per_unit} is too small to encode")
    return mult, shift
