"""The study's attention function: SpAtten (progressive quantization, cascade pruning, local
value pruning), H2O, StreamingLLM or dense inside every attention module, counting K/V bytes."""

from __future__ import annotations

import math
import sys

import numpy as np
import torch

from spatten_dv.models.accuracy.configs import StudyConfig, keep_count, layer_schedule
from spatten_dv.models.accuracy.masks import cascade, h2o_masks, streaming_mask
from spatten_dv.models.formats import effective
from spatten_dv.models.params import QKV_BITS

ATTN_NAME = "spatten_accuracy"
QMAX = (1 << (QKV_BITS - 1)) - 1


def _quantize(x: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """12-bit integers and scale (max|x| / 2047 over `dims`), as formats.quantize_symmetric."""
    peak = x.abs().amax(dim=dims, keepdim=True).to(torch.float64)
    scale = torch.where(peak > 0, peak / QMAX, torch.ones_like(peak))
    q = torch.round(x.to(torch.float64) / scale).clamp(-QMAX - 1, QMAX).to(torch.int64)
    return q, scale


def _dequant(x12: torch.Tensor, bits: int, scale: torch.Tensor) -> torch.Tensor:
    return (effective(x12, bits).to(torch.float64) * scale).to(torch.float32)


def _repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    return x if groups == 1 else x.repeat_interleave(groups, dim=1)


class _Study:
    """State of one forward pass (a batch of chunks) under one configuration."""

    def __init__(self, cfg: StudyConfig, n_layers: int, n_heads: int, batch: int, T: int,
                 score_rows: slice, record: bool = False) -> None:
        self.cfg = cfg
        self.record = record
        self.L, self.H, self.B, self.T = n_layers, n_heads, batch, T
        self.rows = score_rows  # query positions whose decode step is scored
        causal = np.tril(np.ones((T, T), dtype=bool))
        self.tok_kept = np.broadcast_to(causal, (batch, T, T)).copy()
        self.tok_acc = np.zeros((batch, T, T), dtype=np.float64)
        self.head_on = np.ones((batch, T, n_heads), dtype=bool)
        self.head_acc = np.zeros((batch, T, n_heads), dtype=np.float64)
        if cfg.method == "spatten":
            self.ratios, self.head_keep = layer_schedule(cfg, n_layers, n_heads)
        self.stream = (streaming_mask(T, cfg.keys, cfg.sinks) if cfg.method == "streaming"
                       else None)
        self.seen: set[int] = set()
        # counts over the scored rows, summed over layers and heads
        self.n = {"keys": 0.0, "values": 0.0, "lsb_keys": 0.0, "jobs": 0.0, "jobs_run": 0.0,
                  "lsb_jobs": 0.0, "dense_keys": 0.0}
        # with `record`: per-layer keep masks (spatten: tokens (B, T, T) and heads (B, T, H);
        # h2o/streaming: (B, H, T, T)), refetch rows and outputs
        self.kept_history: list[np.ndarray] = []
        self.head_history: list[np.ndarray] = []
        self.refetch_history: list[np.ndarray] = []  # spatten: (B, H, T) LSB refetch rows
        self.out_history: list[torch.Tensor] = []  # spatten: (B, H, T, D) head outputs

    def count(self, name: str, per_row: torch.Tensor | np.ndarray) -> None:
        """Add a per-(batch, query) count, summed over the scored query rows."""
        x = torch.as_tensor(per_row)
        self.n[name] += float(x[:, self.rows].to(torch.float64).sum())

    # ------------------------------------------------------------ attention
    def attend(self, module, query, key, value, attention_mask, scaling, eager, kwargs):
        layer = int(module.layer_idx)
        if layer in self.seen:
            raise RuntimeError(f"layer {layer} ran twice in one forward")
        self.seen.add(layer)
        B, H, T, D = query.shape
        if (B, H, T) != (self.B, self.H, self.T):
            raise RuntimeError(f"attention got {(B, H, T)}, expected {(self.B, self.H, self.T)}")
        if scaling is None:
            scaling = D ** -0.5
        positions = torch.arange(1, T + 1, dtype=torch.float64).expand(B, T)
        self.count("dense_keys", positions * H)
        self.count("jobs", torch.full((B, T), float(H)))
        method = self.cfg.method
        if method == "dense":
            out, _ = eager(module, query, key, value, attention_mask, scaling=scaling, **kwargs)
            self.count("keys", positions * H)
            self.count("values", positions * H)
            self.count("jobs_run", torch.full((B, T), float(H)))
            return out, None
        groups = H // key.shape[1]
        if method == "spatten":
            return self._spatten(layer, query, key, value, scaling, groups)
        v = _repeat_kv(value, groups)
        scores = torch.matmul(query, _repeat_kv(key, groups).transpose(2, 3)).mul_(scaling)
        if method == "h2o":
            keep = torch.from_numpy(h2o_masks(scores.numpy(), self.cfg.keys))
        else:
            keep = self.stream.expand(B, 1, T, T)
        probs = _masked_softmax_(scores, keep)
        kept = keep.sum(-1).to(torch.float64).sum(1) * (H // keep.shape[1])  # (B, T)
        self.count("keys", kept)
        self.count("values", kept)
        self.count("jobs_run", torch.full((B, T), float(H)))
        if self.record:
            self.kept_history.append(keep.expand(B, H, T, T).numpy().copy())
        out = torch.matmul(probs, v).transpose(1, 2).contiguous()
        return out, None

    def _spatten(self, layer, query, key, value, scaling, groups):
        cfg = self.cfg
        B, H, T, D = query.shape
        # 1. cascade head and token pruning for every query position (state: earlier layers)
        self.head_on = cascade(self.head_on, self.head_acc, [self.head_keep[layer]] * T,
                               causal=False)
        ratio = self.ratios[layer]
        counts = [keep_count(ratio, t + 1) for t in range(T)]
        protect = [math.floor(cfg.recent * c) for c in counts] if cfg.recent else None
        self.tok_kept = cascade(self.tok_kept, self.tok_acc, counts, protect=protect)
        if self.record:
            self.kept_history.append(self.tok_kept.copy())
            self.head_history.append(self.head_on.copy())
        kept = torch.from_numpy(self.tok_kept)  # (B, T, T)
        head_on = torch.from_numpy(self.head_on).transpose(1, 2).contiguous()  # (B, H, T)
        n_kept = kept.sum(-1)  # (B, T)
        # 2. Q/K/V: float, or 12-bit with MSB planes
        if cfg.quantized:
            q12, sq = _quantize(query, (-1,))
            k12, sk = _quantize(key, (2, 3))
            v12, sv = _quantize(value, (2, 3))
            q = _dequant(q12, QKV_BITS, sq)
            k_msb = _repeat_kv(_dequant(k12, cfg.msb_bits, sk), groups)
            v = _repeat_kv(_dequant(v12, cfg.v_bits, sv), groups)
            v_unit = _repeat_kv(sv, groups).reshape(B, H, 1).to(torch.float32)
        else:
            q, k_msb, v = query, _repeat_kv(key, groups), _repeat_kv(value, groups)
            v_unit = None
        keep = kept[:, None]  # (B, 1, T, T): one token set for every head of the layer
        empty = n_kept == 0  # NO_TOKENS rows (possible through the cascade, rare)
        # 3. progressive quantization
        probs = _masked_softmax_(torch.matmul(q, k_msb.transpose(2, 3)).mul_(scaling), keep)
        refetch = torch.zeros(B, H, T, dtype=torch.bool)
        if cfg.quantized and cfg.lsb_bits and cfg.requant_thresh > 0:
            refetch = (probs.amax(-1) < cfg.requant_thresh) & head_on & ~empty[:, None]
            if refetch.any():
                k_full = _repeat_kv(_dequant(k12, cfg.msb_bits + cfg.lsb_bits, sk), groups)
                for b, h in torch.nonzero(refetch.any(-1)).tolist():
                    rows = torch.nonzero(refetch[b, h]).flatten()
                    s = torch.matmul(q[b, h, rows], k_full[b, h].T).mul_(scaling)
                    probs[b, h, rows] = _masked_softmax_(s, kept[b, rows])
        if empty.any():
            probs.masked_fill_(empty[:, None, :, None], 0.0)
        # 4. local value pruning: top ceil(values * kept) probabilities per row
        if cfg.values < 1:
            kv = torch.clamp(torch.ceil(cfg.values * n_kept.double() - 1e-9), min=1)
            kv = torch.minimum(kv, n_kept.double()).to(torch.int64)  # (B, T)
            pv = probs * _topk_rows(probs, kv[:, None, :].expand(B, H, T), keep)
        else:
            kv, pv = n_kept, probs
        out = torch.matmul(pv, v).mul_(head_on[..., None])  # pruned heads: zero
        # 5. importance for the next layers (final probabilities, |out| in V's units)
        hw = head_on.to(probs.dtype)
        self.tok_acc += torch.einsum("bhts,bht->bts", probs, hw).double().numpy()
        mag = out.abs().sum(-1)
        if v_unit is not None:
            mag = mag / v_unit
        self.head_acc += (mag * hw).double().transpose(1, 2).numpy()
        if self.record:
            self.refetch_history.append(refetch.numpy().copy())
            self.out_history.append(out.clone())
        # 6. counts
        hon = head_on.to(torch.float64)
        self.count("keys", (n_kept[:, None] * hon).sum(1))
        self.count("values", (kv[:, None] * hon).sum(1))
        self.count("lsb_keys", (n_kept[:, None] * refetch).sum(1))
        self.count("lsb_jobs", refetch.sum(1))
        self.count("jobs_run", hon.sum(1))
        return out.transpose(1, 2).contiguous(), None


def _masked_softmax_(scores: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Softmax over the kept entries (in place on `scores`), as the eager attention does it.

    Masked entries get the dtype's minimum, like the causal mask of the model's own eager
    attention, so an unpruned row gives bit for bit the eager probabilities.
    """
    scores.masked_fill_(~keep, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1, dtype=torch.float32).to(scores.dtype)


def _topk_rows(probs: torch.Tensor, k: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Mask of the top-k[row] entries of each row among `allowed` (ties: lower index wins).

    probs is 0 outside `allowed`; k[row] <= the number of allowed entries of the row.
    """
    kmax = int(k.max())
    if kmax == 0:
        return torch.zeros_like(probs, dtype=torch.bool)
    top = torch.topk(probs, kmax, dim=-1, sorted=True).values
    thr = top.gather(-1, (k - 1).clamp(min=0).unsqueeze(-1))
    mask = probs >= thr
    # exact path for rows with ties at the threshold, a zero threshold or k = 0
    fix = (torch.count_nonzero(mask, dim=-1) != k) | (thr.squeeze(-1) <= 0)
    if fix.any():
        idx = torch.nonzero(fix, as_tuple=True)
        ok = allowed.expand_as(probs)[idx]
        v, t = probs[idx].masked_fill(~ok, -1.0), thr[idx]
        gt, eq = v > t, (v == t) & ok
        need = k[idx].unsqueeze(-1) - gt.sum(-1, keepdim=True)
        mask[idx] = gt | (eq & (eq.cumsum(-1) <= need))
    return mask


_ACTIVE: list[_Study] = []


def _study_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                     **kwargs):
    eager = sys.modules[type(module).__module__].eager_attention_forward
    if not _ACTIVE:
        return eager(module, query, key, value, attention_mask, scaling=scaling,
                     dropout=dropout, **kwargs)
    if dropout:
        raise RuntimeError("the accuracy study runs in eval mode (no dropout)")
    return _ACTIVE[-1].attend(module, query, key, value, attention_mask, scaling, eager, kwargs)


def register_attention() -> str:
    """Register the study's attention with transformers (idempotent); returns its name."""
    from spatten_dv.traces.capture import register_attention_function

    return register_attention_function(ATTN_NAME, _study_attention)
