"""Bit-exact reference model of the SpAtten core (docs/architecture.md, section 7).

`SpAttenCoreModel` holds the state that persists between jobs (token importance and keep mask
for cascade token pruning, head importance and keep mask for cascade head pruning) and runs one
job at a time against a `DramImage`, returning exactly what the RTL must return. All arithmetic
is on int64 tensors, vectorized over tokens and head-dimension elements.
"""

from __future__ import annotations

import numpy as np
import torch

from spatten_dv.models.descriptor import Job, JobResult, Status
from spatten_dv.models.formats import combine, reconstruct, unpack_plane
from spatten_dv.models.layout import plane_fetch_beats, plane_fetch_words
from spatten_dv.models.memory import DECERR, DramImage
from spatten_dv.models.params import (
    DEFAULT_PARAMS,
    IMP_BITS,
    OUT_BITS,
    OUT_SHIFT,
    CoreParams,
)
from spatten_dv.models.softmax import softmax_fixed
from spatten_dv.models.topk import topk_indices

IMP_MAX = (1 << IMP_BITS) - 1
OUT_MAX = (1 << (OUT_BITS - 1)) - 1
OUT_MIN = -(1 << (OUT_BITS - 1))


class _AxiError(Exception):
    def __init__(self, resp: int):
        self.resp = resp


def dot_products(query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Exact Q.K integer dot products: (..., D) x (..., N, D) -> (..., N)."""
    return (keys.to(torch.int64) * query.to(torch.int64).unsqueeze(-2)).sum(dim=-1)


def weighted_sum(probs: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Output stage: sat16((sum_i p_i * v_i + 2^10) >> 11) per element."""
    acc = (probs.to(torch.int64).unsqueeze(-1) * values.to(torch.int64)).sum(dim=-2)
    return ((acc + (1 << (OUT_SHIFT - 1))) >> OUT_SHIFT).clamp(OUT_MIN, OUT_MAX)


class SpAttenCoreModel:
    """The core's architectural state and its job semantics."""

    def __init__(self, params: CoreParams = DEFAULT_PARAMS):
        self.params = params
        self.token_importance = torch.zeros(params.max_tokens, dtype=torch.int64)
        self.token_kept = torch.ones(params.max_tokens, dtype=torch.bool)
        self.head_importance = torch.zeros(params.max_heads, dtype=torch.int64)
        self.head_kept = torch.ones(params.max_heads, dtype=torch.bool)

    # ------------------------------------------------------------------ state updates
    def clear_tokens(self) -> None:
        self.token_importance.zero_()
        self.token_kept.fill_(True)

    def clear_heads(self) -> None:
        self.head_importance.zero_()
        self.head_kept.fill_(True)

    def rescale_tokens(self, shift: int) -> None:
        """token_imp >>= shift for every token (section 7 step 3)."""
        if shift:
            self.token_importance >>= shift

    def reselect_tokens(self, n_tokens: int) -> None:
        """Every token below n_tokens is a candidate again; importance unchanged (step 4)."""
        self.token_kept[:n_tokens] = True

    def prune_tokens(self, n_tokens: int, keep: int, protect_sink: int = 0,
                     protect_recent: int = 0) -> None:
        """Keep the `keep` highest-ranked of the kept tokens below n_tokens (step 6).

        Rank = protected * 2^32 + importance: tokens below protect_sink and the newest
        protect_recent tokens come first and count toward `keep`.
        """
        candidates = torch.nonzero(self.token_kept[:n_tokens]).flatten()
        if keep >= candidates.numel():
            return
        protected = (candidates < protect_sink) | (candidates >= n_tokens - protect_recent)
        rank = self.token_importance[candidates] + (protected.to(torch.int64) << IMP_BITS)
        winners = candidates[topk_indices(rank, keep)]
        self.token_kept[:n_tokens] = False
        self.token_kept[winners] = True

    def prune_heads(self, n_heads: int, keep: int) -> None:
        """Keep the `keep` most important of the kept heads below n_heads."""
        candidates = torch.nonzero(self.head_kept[:n_heads]).flatten()
        if keep >= candidates.numel():
            return
        winners = candidates[topk_indices(self.head_importance[candidates], keep)]
        self.head_kept[:n_heads] = False
        self.head_kept[winners] = True

    # ------------------------------------------------------------------ state readback
    def state_view(self, heads: bool, n: int) -> tuple[list[int], list[int]]:
        """(importance, kept as 0/1) of entries 0..n-1: what the core's state readback returns
        (docs/architecture.md section 10). n is clamped to max_heads (heads) or max_tokens."""
        imp, kept = ((self.head_importance, self.head_kept) if heads
                     else (self.token_importance, self.token_kept))
        n = max(0, min(n, imp.numel()))
        return [int(x) for x in imp[:n].tolist()], [int(x) for x in kept[:n].tolist()]

    # ------------------------------------------------------------------ memory access
    def _fetch(self, memory: DramImage, base: int, tokens: torch.Tensor, width: int,
               signed: bool) -> torch.Tensor:
        # an error anywhere in a bus word the fetcher reads fails the job (section 8)
        p = self.params
        words = plane_fetch_words(tokens.numpy(), width, p)
        resp = memory.error_for(base + words * p.bus_bytes, p.bus_bytes)
        if resp:
            raise _AxiError(resp)
        tb = p.token_bytes(width)
        addrs = base + tokens.numpy().astype(np.int64) * tb
        return unpack_plane(memory.gather(addrs, tb), width, signed, p)

    def _fetch_bytes(self, tokens: torch.Tensor, width: int) -> int:
        """Bytes the fetcher reads for these tokens: whole bus words (section 3)."""
        return plane_fetch_beats(tokens.numpy(), width, self.params) * self.params.bus_bytes

    # ------------------------------------------------------------------ one job
    def run_job(self, job: Job, memory: DramImage) -> JobResult:
        p = self.params
        zero = torch.zeros(p.head_dim, dtype=torch.int64)
        status = job.validate()
        if status != Status.OK:
            return JobResult(job.job_id, status, zero)
        # 1. State operations carried by the descriptor, in this order.
        if job.clear_tokens:
            self.clear_tokens()
        if job.clear_heads:
            self.clear_heads()
        self.rescale_tokens(job.imp_shift)
        if job.reselect:
            self.reselect_tokens(job.n_tokens)
        if job.head_keep:
            self.prune_heads(job.n_heads, job.head_keep)
        if job.token_keep:
            self.prune_tokens(job.n_tokens, job.token_keep, job.protect_sink,
                              job.protect_recent)
        # 2. A pruned head does no work.
        if not bool(self.head_kept[job.head_id]):
            return JobResult(job.job_id, Status.HEAD_SKIPPED, zero)
        keys = torch.nonzero(self.token_kept[:job.n_tokens]).flatten()
        if keys.numel() == 0:
            return JobResult(job.job_id, Status.NO_TOKENS, zero)
        result = JobResult(job.job_id, Status.OK, zero, keys=keys)
        try:
            self._attend(job, memory, result)
        except _AxiError as err:
            status = Status.AXI_DECERR if err.resp == DECERR else Status.AXI_SLVERR
            return JobResult(job.job_id, status, zero)
        # 3. Importance accumulation (only for jobs that completed).
        if job.acc_tokens:
            acc = self.token_importance[keys] + result.probs
            self.token_importance[keys] = acc.clamp(max=IMP_MAX)
        if job.acc_heads:
            acc = int(self.head_importance[job.head_id]) + int(result.out.abs().sum())
            self.head_importance[job.head_id] = min(acc, IMP_MAX)
        return result

    def _attend(self, job: Job, memory: DramImage, result: JobResult) -> None:
        p = self.params
        keys = result.keys
        n = keys.numel()
        # MSB pass.
        msb = self._fetch(memory, job.k_msb_base, keys, job.msb_bits, signed=True)
        result.bytes_k_msb = self._fetch_bytes(keys, job.msb_bits)
        sm = softmax_fixed(dot_products(job.query, reconstruct(msb, job.msb_bits)),
                           job.score_mult, job.score_shift)
        result.max_prob_msb = int(sm.max_prob)
        # Progressive quantization: a flat distribution means the MSBs were not enough.
        if job.lsb_bits and result.max_prob_msb < job.requant_thresh:
            lsb = self._fetch(memory, job.k_lsb_base, keys, job.lsb_bits, signed=False)
            result.bytes_k_lsb = self._fetch_bytes(keys, job.lsb_bits)
            result.lsb_fetched = True
            full = reconstruct(combine(msb, lsb, job.lsb_bits), job.msb_bits + job.lsb_bits)
            sm = softmax_fixed(dot_products(job.query, full), job.score_mult, job.score_shift)
        result.max_prob = int(sm.max_prob)
        result.probs = sm.probs
        # Local value pruning: V only for the top-v_topk probabilities.
        if job.v_topk and job.v_topk < n:
            picked = topk_indices(sm.probs, job.v_topk)
        else:
            picked = torch.arange(n, dtype=torch.int64)
        result.values = keys[picked]
        v = self._fetch(memory, job.v_base, result.values, job.v_bits, signed=True)
        result.bytes_v = self._fetch_bytes(result.values, job.v_bits)
        result.out = weighted_sum(sm.probs[picked], reconstruct(v, job.v_bits))
        result.beats = result.bytes_read // p.bus_bytes
