"""Accuracy study: the float SpAtten algorithm inside a real model's attention, vs. H2O and
StreamingLLM at the same K/V budget (docs/accuracy.md).

Teacher-forced perplexity over chunks of a text. Inside every attention module, each query
position t is its own simulated decode step over the t + 1 tokens before it (a causal LM's
decode step). Everything is vectorized over heads, query positions and a batch of chunks,
except the cascades (token and head pruning, H2O eviction), which are sequential in t by
nature and run as one numpy loop over t per layer, vectorized over the batch and the heads.

SpAtten (docs/architecture.md, sections 5-7, applied per query position):

* cascade token pruning: importance of token s for query t at layer l = the attention
  probabilities s received in the layers before l (all heads not pruned) from every query
  t' <= t. Keep the top max(16, ceil(r_l (t + 1))) of the candidates (top-k, the lower index
  winning ties), the candidates being the tokens kept at layer l - 1 for query t and not pruned
  at layer l for an earlier query. So a token pruned at (l, t) stays pruned at every
  (l' >= l, t' >= t). With `recent`, the newest floor(recent * budget) tokens are exempt (a
  deviation from the spec, see docs/accuracy.md). r_l is ramped: `dense_layers` layers at 1,
  then linearly down to r_min over `ramp_layers` layers, then r_min; r_min is solved so that
  the mean keep ratio over the layers is `keys`.
* cascade head pruning: the same with heads, importance = sum_d |out_d| of the head (in V's
  integer units), keep ceil(h_l * H) heads, h_l ramped the same way down to `heads`. A pruned
  head's output is zero (HEAD_SKIPPED: nothing fetched, nothing accumulated).
* progressive quantization: Q (per query vector), K and V (per chunk, layer and KV head) as
  12-bit integers; scores with K at `msb_bits` (formats.effective: truncated, midpoint
  reconstruction); rows whose max probability < `requant_thresh` are recomputed with
  `msb_bits + lsb_bits` bits.
* local value pruning: only the top ceil(`values` * kept) probabilities of a row fetch and use
  their V (the others contribute nothing; no renormalization). V at `v_bits`.

H2O (heavy hitters + recent window, half each, per layer and head, evicted tokens never return)
and StreamingLLM (4 sink tokens + recent window) keep max(16, ceil(f (t + 1))) tokens per
query with full-precision K/V. Dense is the model's own (eager) attention.

K/V bytes per scored token are counted as the core would fetch them for that decode step: per
layer and query head (one job each), kept keys x msb_bits (+ lsb_bits for rows that refetch) +
fetched values x v_bits, times head_dim / 8; unquantized K/V count as 12 bits (the core's full
precision). The padded DRAM footprint (docs/architecture.md section 3, stride per plane) is
reported too.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from spatten_dv.errors import UserError
from spatten_dv.models.formats import effective
from spatten_dv.models.params import DEFAULT_PARAMS, LSB_WIDTHS, PLANE_WIDTHS, QKV_BITS

ATTN_NAME = "spatten_accuracy"
DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_TEXT = DATA_DIR / "austen_persuasion_ch1-8.txt"
METHODS = ("dense", "spatten", "h2o", "streaming")
QMAX = (1 << (QKV_BITS - 1)) - 1
FULL_BITS = QKV_BITS  # what unquantized K/V count as (12-bit planes)
MIN_KEEP = 16  # token budgets never go below 16 tokens (keep_count)


# ---------------------------------------------------------------- configurations


@dataclass(frozen=True)
class StudyConfig:
    """One evaluated configuration. Fractions are of the dense (causal) count."""

    name: str
    method: str  # dense | spatten | h2o | streaming
    keys: float = 1.0  # spatten: mean token keep ratio over layers; h2o/streaming: per query
    values: float = 1.0  # spatten: fraction of the kept keys whose V is fetched
    heads: float = 1.0  # spatten: head keep ratio after the ramp
    dense_layers: float = 1 / 30  # spatten: fraction of layers (>= 1 layer) kept dense
    ramp_layers: float = 4 / 30  # spatten: fraction of layers (>= 1) of the linear ramp
    msb_bits: int | None = None  # None: float Q/K/V (no quantization)
    lsb_bits: int = 0
    v_bits: int | None = None
    requant_thresh: float = 0.0
    recent: float = 0.0  # spatten: the newest floor(recent * keep) tokens are never pruned
    sinks: int = 4  # streaming
    note: str = ""

    def validate(self) -> None:
        if self.method not in METHODS:
            raise UserError(f"{self.name}: method must be one of {METHODS}")
        for fname in ("keys", "values", "heads"):
            v = getattr(self, fname)
            if not 0 < v <= 1:
                raise UserError(f"{self.name}: {fname} must be in (0, 1], got {v}")
        if self.method != "spatten" and (self.values != 1 or self.heads != 1 or self.quantized):
            raise UserError(f"{self.name}: values/heads/quantization are SpAtten options")
        if self.quantized:
            if self.msb_bits not in PLANE_WIDTHS or self.v_bits not in PLANE_WIDTHS:
                raise UserError(f"{self.name}: msb_bits and v_bits must be in {PLANE_WIDTHS}")
            if self.lsb_bits not in LSB_WIDTHS or self.msb_bits + self.lsb_bits > QKV_BITS:
                raise UserError(f"{self.name}: lsb_bits must be in {LSB_WIDTHS} with "
                                f"msb_bits + lsb_bits <= {QKV_BITS}")
        elif self.v_bits is not None or self.lsb_bits:
            raise UserError(f"{self.name}: v_bits/lsb_bits need msb_bits")
        if self.requant_thresh < 0 or self.requant_thresh > 1:
            raise UserError(f"{self.name}: requant_thresh must be in [0, 1]")
        if not 0 <= self.recent < 1 or (self.recent and self.method != "spatten"):
            raise UserError(f"{self.name}: recent must be in [0, 1) (SpAtten only)")
        if self.sinks < 0:
            raise UserError(f"{self.name}: sinks must be >= 0")

    @property
    def quantized(self) -> bool:
        return self.msb_bits is not None

    @property
    def k_bits(self) -> int:
        return self.msb_bits if self.quantized else FULL_BITS

    @property
    def val_bits(self) -> int:
        return self.v_bits if self.quantized else FULL_BITS

    def describe(self) -> str:
        if self.method == "dense":
            return "dense attention, float K/V (counted as 12-bit)"
        if self.method == "h2o":
            return f"H2O: {self.keys:.0%} of tokens/query (heavy hitters + recent, half each)"
        if self.method == "streaming":
            return f"StreamingLLM: {self.sinks} sinks + recent, {self.keys:.0%} of tokens/query"
        bits = (f"K {self.msb_bits}+{self.lsb_bits} bits (thr {self.requant_thresh:g}), "
                f"V {self.v_bits} bits" if self.quantized else "float K/V")
        heads = f", heads to {self.heads:.0%}" if self.heads < 1 else ""
        recent = f" (newest {self.recent:.0%} kept)" if self.recent else ""
        return (f"SpAtten: tokens ramp to mean {self.keys:.0%}{recent}, V top "
                f"{self.values:.0%} of kept{heads}, {bits}")


def _ramp(n_layers: int, dense: float, ramp: float) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) with ratio_l = a_l + b_l * r_min: dense layers at 1, a linear ramp, then r_min."""
    d = max(1, round(dense * n_layers)) if dense > 0 else 0
    r = max(1, round(ramp * n_layers))
    a = np.ones(n_layers)
    b = np.zeros(n_layers)
    for layer in range(d, n_layers):
        j = min(layer - d + 1, r) / r  # 1/r .. 1 along the ramp, then 1
        a[layer], b[layer] = 1 - j, j
    return a, b


def layer_schedule(cfg: StudyConfig, n_layers: int, n_heads: int) -> tuple[list[float], list[int]]:
    """Per-layer token keep ratios and head keep counts of a SpAtten config.

    The head counts ramp down to ceil(heads * H); r_min is solved so that the mean over the
    layers of (token ratio x kept-head fraction) equals `keys`.
    """
    a, b = _ramp(n_layers, cfg.dense_layers, cfg.ramp_layers)
    head_ratio = a + b * cfg.heads
    head_keep = [min(n_heads, math.ceil(h * n_heads - 1e-9)) for h in head_ratio]
    hf = np.array(head_keep) / n_heads
    if cfg.keys >= 1:
        r_min = 1.0
    else:
        denom = float((hf * b).mean())
        r_min = (cfg.keys - float((hf * a).mean())) / denom if denom > 0 else -1.0
    if not 0 < r_min <= 1:
        raise UserError(f"{cfg.name}: a mean keep ratio of {cfg.keys} cannot be reached with "
                        f"this ramp over {n_layers} layers (r_min would be {r_min:.3f})")
    return [float(x) for x in a + b * r_min], head_keep


def keep_count(ratio: float, n: int) -> int:
    """Tokens kept for a query over n tokens: ceil(ratio * n), but never below MIN_KEEP.

    The floor only matters for the first queries of a chunk (ratio * n < MIN_KEEP, n < 80 at
    20 %); without it a 20 % budget keeps 1 token at n = 2..5 and H2O, whose evictions are
    final, would lose the first (attention sink) token at the second query.
    """
    return min(n, max(MIN_KEEP, math.ceil(ratio * n - 1e-9)))


def _cfg(name, method, **kw) -> StudyConfig:
    return StudyConfig(name=name, method=method, **kw)


# The study's configurations. "spatten-per8" is the point close to the GPT-2-small per8
# workload (28 % of keys, 5.5 % of values, 6-bit MSB + 4-bit LSB, threshold 0.05). SpAtten
# points keep the newest half of each query's token budget unpruned (`recent`, see the doc:
# without it the accumulated importance prunes every new token at once); "-norecent" is the
# plain spec schedule. DEFAULT_NAMES run by default; the others on request (--configs).
_SP = {"recent": 0.5, "lsb_bits": 4, "requant_thresh": 0.05}
ALL_CONFIGS: tuple[StudyConfig, ...] = (
    _cfg("dense", "dense"),
    _cfg("spatten-50", "spatten", keys=0.50, values=0.50, msb_bits=8, v_bits=8, **_SP),
    _cfg("spatten-per8", "spatten", keys=0.28, values=0.055 / 0.28, msb_bits=6, v_bits=12,
         note="close to the GPT-2-small per8 workload", **_SP),
    _cfg("spatten-20", "spatten", keys=0.20, values=0.20, heads=8 / 9, msb_bits=6, v_bits=8,
         **_SP),
    _cfg("h2o-28", "h2o", keys=0.28),
    _cfg("streaming-28", "streaming", keys=0.28),
    _cfg("h2o-20", "h2o", keys=0.20),
    _cfg("streaming-20", "streaming", keys=0.20),
    _cfg("h2o-10", "h2o", keys=0.10),
    _cfg("streaming-10", "streaming", keys=0.10),
    # on request
    _cfg("spatten-10", "spatten", keys=0.10, values=0.25, heads=7 / 9, ramp_layers=2 / 30,
         msb_bits=4, v_bits=8, **_SP),
    _cfg("spatten-per8-norecent", "spatten", keys=0.28, values=0.055 / 0.28, msb_bits=6,
         v_bits=12, lsb_bits=4, requant_thresh=0.05),
    _cfg("spatten-tokens-28", "spatten", keys=0.28, recent=0.5),
    _cfg("dense-12bit", "spatten", msb_bits=12, v_bits=12),
)
DEFAULT_NAMES = ("dense", "spatten-50", "spatten-per8", "spatten-20", "h2o-28", "streaming-28",
                 "h2o-20", "streaming-20", "h2o-10", "streaming-10")
CONFIGS_BY_NAME = {c.name: c for c in ALL_CONFIGS}


def select_configs(names: Sequence[str] | None) -> list[StudyConfig]:
    if not names:
        return [CONFIGS_BY_NAME[n] for n in DEFAULT_NAMES]
    out = []
    for name in names:
        if name not in CONFIGS_BY_NAME:
            raise UserError(f"unknown config {name!r}; choose from {', '.join(CONFIGS_BY_NAME)}")
        if CONFIGS_BY_NAME[name] not in out:
            out.append(CONFIGS_BY_NAME[name])
    return out


# ---------------------------------------------------------------- cascades (sequential in t)


def _prune_lowest(cand: np.ndarray, imp: np.ndarray, excess: np.ndarray,
                  removed: np.ndarray | None = None) -> None:
    """Clear, in each row of `cand` (..., N), the `excess` candidates that lose the top-k.

    The loser is the lowest importance; among equal importance the higher index (the lower
    index wins, docs/architecture.md section 6). `removed` (same shape) gets the pruned ones.
    """
    rows = excess > 0
    while rows.any():
        if int(excess.max()) > 4:  # many at once: a full ordering
            vals = np.where(cand, imp, np.inf)[..., ::-1]
            order = np.argsort(vals, axis=-1, kind="stable")  # ascending; ties: higher index
            rank = np.empty_like(order)
            np.put_along_axis(rank, order, np.arange(order.shape[-1]), axis=-1)
            rank = rank[..., ::-1]
            losers = cand & (rank < excess[..., None])
            cand &= ~losers
            if removed is not None:
                removed |= losers
            return
        vals = np.where(cand, imp, np.inf)
        j = vals.shape[-1] - 1 - np.argmin(vals[..., ::-1], axis=-1)
        idx = np.nonzero(rows)
        cand[idx + (j[idx],)] = False
        if removed is not None:
            removed[idx + (j[idx],)] = True
        excess = excess - rows
        rows = excess > 0


def cascade(prev: np.ndarray, acc: np.ndarray, keep: Sequence[int], causal: bool = True,
            protect: Sequence[int] | None = None) -> np.ndarray:
    """Cascade pruning of one layer for every query position.

    prev (B, T, N) bool: kept at the previous layer for query t. acc (B, T, N): importance
    added by query t in the previous layers; the importance for query t is its cumulative sum
    over queries <= t. keep[t]: how many to keep for query t. Returns kept (B, T, N): the
    top-keep[t] candidates, candidates being prev[:, t] minus everything this layer pruned for
    earlier queries. `causal`: prev[:, t] has at most t + 1 candidates (tokens).
    `protect[t]`: the newest protect[t] tokens (t - protect[t] < s <= t) are not pruned for
    query t (they still count in keep[t]).
    """
    B, T, N = prev.shape
    if all(keep[t] >= (min(N, t + 1) if causal else N) for t in range(T)):
        return prev.copy()
    kept = np.empty_like(prev)
    alive = np.ones((B, N), dtype=bool)
    imp = np.zeros((B, N), dtype=np.float64)
    for t in range(T):
        imp += acc[:, t]
        cand = prev[:, t] & alive
        excess = cand.sum(axis=-1) - keep[t]
        if (excess > 0).any():
            pruned = np.zeros_like(cand)
            w = protect[t] if protect else 0
            if w:
                saved = imp[:, t + 1 - w:t + 1].copy()
                imp[:, t + 1 - w:t + 1] = np.inf
            _prune_lowest(cand, imp, excess, pruned)
            if w:
                imp[:, t + 1 - w:t + 1] = saved
            alive &= ~pruned
        kept[:, t] = cand
    return kept


def h2o_masks(scores: np.ndarray, keys: float) -> np.ndarray:
    """H2O keep masks (B, H, T, T) from dense scores (B, H, T, T) (causal part used).

    Per query t keep k = ceil(keys (t + 1)) tokens: the k - k//2 most recent and the k//2
    heavy hitters with the largest accumulated attention among the older tokens never evicted.
    Accumulated attention = the probabilities each token got from the earlier queries, under
    the masks actually used. A token not chosen is evicted for good.
    """
    B, H, T, _ = scores.shape
    mask = np.zeros((B, H, T, T), dtype=bool)
    acc = np.zeros((B, H, T), dtype=np.float64)
    alive = np.ones((B, H, T), dtype=bool)
    for t in range(T):
        n = t + 1
        k = keep_count(keys, n)
        row = mask[:, :, t, :]
        if k >= n:
            row[..., :n] = True
        else:
            heavy = k // 2
            start = n - (k - heavy)  # recent window [start, t]
            cand = alive[..., :start].copy()
            excess = cand.sum(axis=-1) - heavy
            if (excess > 0).any():
                _prune_lowest(cand, acc[..., :start], excess)
                alive[..., :start] = cand
            row[..., :start] = cand
            row[..., start:n] = True
        s = np.where(row[..., :n], scores[:, :, t, :n], -np.inf)
        p = np.exp(s - s.max(axis=-1, keepdims=True))
        acc[..., :n] += p / p.sum(axis=-1, keepdims=True)
    return mask


def streaming_mask(T: int, keys: float, sinks: int) -> torch.Tensor:
    """StreamingLLM keep mask (T, T): `sinks` first tokens + the recent window, k per query."""
    mask = torch.zeros(T, T, dtype=torch.bool)
    for t in range(T):
        n = t + 1
        k = keep_count(keys, n)
        if k >= n:
            mask[t, :n] = True
            continue
        recent = max(1, k - sinks)
        mask[t, : k - recent] = True
        mask[t, n - recent:n] = True
    return mask


# ---------------------------------------------------------------- per-forward state


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


# ---------------------------------------------------------------- evaluation


@dataclass
class Chunks:
    """Sliding chunks of a token stream: chunk c = tokens [c*stride, c*stride + length)."""

    tokens: list[int]
    length: int
    context: int
    n_chunks: int

    @property
    def stride(self) -> int:
        return self.length - self.context

    @property
    def scored(self) -> int:
        return self.n_chunks * self.stride

    def chunk(self, c: int) -> list[int]:
        return self.tokens[c * self.stride: c * self.stride + self.length]


def make_chunks(tokens: Sequence[int], n_scored: int, length: int = 1024,
                context: int = 256) -> Chunks:
    """Enough chunks for at least n_scored scored tokens (each with >= `context` before it)."""
    if not 1 <= context < length:
        raise UserError(f"context ({context}) must be in [1, chunk length {length})")
    if n_scored < 1:
        raise UserError(f"--tokens must be at least 1, got {n_scored}")
    stride = length - context
    n = -(-n_scored // stride)
    need = context + n * stride
    if need > len(tokens):
        most = (len(tokens) - context) // stride * stride
        raise UserError(f"{n_scored} scored tokens need {need} tokens of text, the text has "
                        f"{len(tokens)} (at most --tokens {most})")
    return Chunks(list(tokens), length, context, n)


@dataclass
class ConfigResult:
    name: str
    method: str
    description: str
    perplexity: float
    nll: float
    scored_tokens: int
    keys_pct: float
    values_pct: float
    lsb_refetch_pct: float  # of the jobs run
    heads_run_pct: float
    kv_bytes_per_token: float  # payload bits / 8
    dense_bytes_per_token: float  # 12-bit K and V, all tokens
    bus_bytes_per_token: float  # padded planes (DRAM strides)
    dense_bus_bytes_per_token: float
    seconds: float
    config: dict = field(default_factory=dict)

    @property
    def reduction(self) -> float:
        return self.dense_bytes_per_token / self.kv_bytes_per_token

    @property
    def bus_reduction(self) -> float:
        return self.dense_bus_bytes_per_token / self.bus_bytes_per_token


def _model_dims(model) -> tuple[int, int, int]:
    c = model.config
    n_heads = c.num_attention_heads
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // n_heads
    return c.num_hidden_layers, n_heads, head_dim


def _stride(bits: int, head_dim: int) -> int:
    if not bits:
        return 0
    word = DEFAULT_PARAMS.axi_data_bits
    return -(-head_dim * bits // word) * (word // 8)


def evaluate(model, chunks: Chunks, cfg: StudyConfig, batch: int = 1,
             progress: Callable[[int], None] | None = None,
             on_forward: Callable[[_Study], None] | None = None,
             record: bool = False) -> ConfigResult:
    """Perplexity of `model` on the scored tokens of `chunks` under one configuration."""
    cfg.validate()
    register_attention()
    if model.config._attn_implementation != ATTN_NAME:
        model.set_attn_implementation(ATTN_NAME)
    L, H, D = _model_dims(model)
    if cfg.method == "spatten":
        layer_schedule(cfg, L, H)  # fail early on an unreachable budget
    base = model.base_model
    head = model.get_output_embeddings()
    T, ctx = chunks.length, chunks.context
    rows = slice(ctx - 1, T - 1)  # query t predicts token t + 1 = a scored token
    totals = {"keys": 0.0, "values": 0.0, "lsb_keys": 0.0, "jobs": 0.0, "jobs_run": 0.0,
              "lsb_jobs": 0.0, "dense_keys": 0.0}
    nll, count = 0.0, 0
    t0 = time.monotonic()
    with torch.inference_mode():
        for first in range(0, chunks.n_chunks, batch):
            ids = torch.tensor([chunks.chunk(c)
                                for c in range(first, min(first + batch, chunks.n_chunks))])
            study = _Study(cfg, L, H, ids.shape[0], T, rows, record)
            _ACTIVE.append(study)
            try:
                hidden = base(input_ids=ids, use_cache=False).last_hidden_state
            finally:
                _ACTIVE.remove(study)
            if len(study.seen) != L:
                raise RuntimeError(f"{len(study.seen)} of {L} layers ran the study's attention")
            logits = head(hidden[:, rows]).float()
            targets = ids[:, ctx:]
            lp = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1))
            nll -= float(lp.double().sum())
            count += targets.numel()
            for name in totals:
                totals[name] += study.n[name]
            if on_forward:
                on_forward(study)
            if progress:
                progress(ids.shape[0])
    seconds = time.monotonic() - t0
    bits_k, bits_v, bits_l = cfg.k_bits, cfg.val_bits, cfg.lsb_bits
    per = D / 8 / count
    kv_bytes = (totals["keys"] * bits_k + totals["lsb_keys"] * bits_l
                + totals["values"] * bits_v) * per
    dense_bytes = totals["dense_keys"] * 2 * FULL_BITS * per
    bus = (totals["keys"] * _stride(bits_k, D) + totals["lsb_keys"] * _stride(bits_l, D)
           + totals["values"] * _stride(bits_v, D)) / count
    dense_bus = totals["dense_keys"] * 2 * _stride(FULL_BITS, D) / count
    return ConfigResult(
        name=cfg.name, method=cfg.method, description=cfg.describe(),
        perplexity=math.exp(nll / count), nll=nll / count, scored_tokens=count,
        keys_pct=100 * totals["keys"] / totals["dense_keys"],
        values_pct=100 * totals["values"] / totals["dense_keys"],
        lsb_refetch_pct=100 * totals["lsb_jobs"] / max(totals["jobs_run"], 1),
        heads_run_pct=100 * totals["jobs_run"] / totals["jobs"],
        kv_bytes_per_token=kv_bytes, dense_bytes_per_token=dense_bytes,
        bus_bytes_per_token=bus, dense_bus_bytes_per_token=dense_bus,
        seconds=seconds, config=asdict(cfg))


# ---------------------------------------------------------------- reporting


TABLE_HEAD = ("| config | perplexity | vs dense | keys % | values % | LSB refetch % | "
              "K/V MB/token | reduction | bus MB/token | bus reduction | time s |\n"
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")


def table(results: Sequence[ConfigResult]) -> str:
    dense = next((r for r in results if r.method == "dense"), None)
    lines = [TABLE_HEAD]
    for r in results:
        delta = (f"{r.perplexity - dense.perplexity:+.2f} "
                 f"({100 * (r.perplexity / dense.perplexity - 1):+.1f}%)" if dense else "-")
        lines.append(
            f"| {r.name} | {r.perplexity:.3f} | {delta} | {r.keys_pct:.1f} | {r.values_pct:.1f}"
            f" | {r.lsb_refetch_pct:.1f} | {r.kv_bytes_per_token / 1e6:.3f}"
            f" | {r.reduction:.1f}x | {r.bus_bytes_per_token / 1e6:.3f}"
            f" | {r.bus_reduction:.1f}x | {r.seconds:.0f} |")
    return "\n".join(lines)


CSV_FIELDS = ("name", "method", "perplexity", "nll", "scored_tokens", "keys_pct", "values_pct",
              "lsb_refetch_pct", "heads_run_pct", "kv_bytes_per_token", "dense_bytes_per_token",
              "reduction", "bus_bytes_per_token", "dense_bus_bytes_per_token", "bus_reduction",
              "seconds", "description")


def write_results(out: Path, results: Sequence[ConfigResult], meta: dict) -> None:
    """results.json, results.csv and table.md (rewritten after every config)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for r in results:
        d = asdict(r)
        d["reduction"], d["bus_reduction"] = r.reduction, r.bus_reduction
        rows.append(d)
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps({"meta": meta, "results": rows}, indent=1) + "\n")
    tmp.replace(out / "results.json")
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    (out / "table.md").write_text(table(results) + "\n")


def load_results(path: Path) -> tuple[dict, list[ConfigResult]]:
    """(meta, results) of a results.json written by write_results."""
    data = json.loads(Path(path).read_text())
    names = set(ConfigResult.__dataclass_fields__)
    return data["meta"], [ConfigResult(**{k: v for k, v in r.items() if k in names})
                          for r in data["results"]]


def plot(results: Sequence[ConfigResult], path: Path, title: str) -> None:
    """Perplexity vs K/V bytes fetched per token (payload), log-log, one style per method.

    Points of a method are joined in byte order (SpAtten: only the configs with a recent
    window, the plain-spec variants stand alone).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    styles = {"dense": ("k", "*"), "spatten": ("tab:blue", "o"), "h2o": ("tab:orange", "s"),
              "streaming": ("tab:green", "^")}
    labels = {"dense": "dense (12-bit K/V)", "spatten": "SpAtten", "h2o": "H2O",
              "streaming": "StreamingLLM"}
    fig, ax = plt.subplots(figsize=(8, 5))
    for method in METHODS:
        pts = sorted((r for r in results if r.method == method),
                     key=lambda r: r.kv_bytes_per_token)
        if not pts:
            continue
        color, marker = styles[method]
        line = [r for r in pts if method != "spatten" or r.config.get("recent", 0) > 0]
        if len(line) > 1:
            ax.plot([r.kv_bytes_per_token / 1e6 for r in line], [r.perplexity for r in line],
                    color=color, linewidth=1, alpha=0.6)
        ax.scatter([r.kv_bytes_per_token / 1e6 for r in pts], [r.perplexity for r in pts],
                   marker=marker, color=color, label=labels[method], s=60 if marker == "*"
                   else 30, zorder=3)
        for r in pts:
            ax.annotate(r.name, (r.kv_bytes_per_token / 1e6, r.perplexity), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
    dense = next((r for r in results if r.method == "dense"), None)
    if dense:
        ax.axhline(dense.perplexity, color="k", linewidth=0.6, linestyle=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(plain)
    ax.tick_params(which="both", labelsize=7)
    ax.set_xlabel("K/V bytes fetched per token, MB (payload; dense = 12-bit K and V)")
    ax.set_ylabel("perplexity")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_title(meta: dict) -> str:
    model = str(meta.get("model", "model")).split(" (")[0].split("/")[-1]
    return (f"{model}, {meta.get('scored_tokens', '?')} scored tokens of "
            f"{meta.get('text', 'text')}")


def read_text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read text file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None


def run_study(model, tokenizer, text: str, configs: Sequence[StudyConfig], out: Path,
              n_scored: int = 20000, length: int = 1024, context: int = 256, batch: int = 3,
              meta: dict | None = None, progress: bool = True,
              log: Callable[[str], None] = print) -> list[ConfigResult]:
    """Run every config; results.json/csv/table.md and accuracy.png in `out` after each."""
    from tqdm import tqdm

    for cfg in configs:
        cfg.validate()
    tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
    limit = getattr(model.config, "n_positions", None) or getattr(
        model.config, "max_position_embeddings", None)
    if limit and length > limit:
        raise UserError(f"chunk length {length} exceeds the model's {limit} positions")
    chunks = make_chunks(tokens, n_scored, length, context)
    L, H, D = _model_dims(model)
    meta = dict(meta or {})
    meta.update({"text_tokens": len(tokens), "scored_tokens": chunks.scored,
                 "chunks": chunks.n_chunks, "chunk_length": length, "context": context,
                 "layers": L, "heads": H, "head_dim": D, "threads": torch.get_num_threads()})
    log(f"{chunks.n_chunks} chunks of {length} tokens (first {context} of each are context), "
        f"{chunks.scored} scored tokens of {len(tokens)}; {len(configs)} configs")
    results: list[ConfigResult] = []
    title = plot_title(meta)
    bar = tqdm(total=chunks.n_chunks * len(configs), unit="chunk", disable=not progress,
               desc="accuracy", dynamic_ncols=True,
               mininterval=0.1 if sys.stderr.isatty() else 30.0)
    try:
        for cfg in configs:
            bar.set_postfix_str(cfg.name)
            res = evaluate(model, chunks, cfg, batch=batch, progress=bar.update)
            results.append(res)
            write_results(out, results, meta)
            plot(results, out / "accuracy.png", title)
            bar.write(f"{cfg.name}: perplexity {res.perplexity:.3f}, keys {res.keys_pct:.1f}%, "
                      f"values {res.values_pct:.1f}%, {res.reduction:.1f}x fewer K/V bytes "
                      f"({res.seconds:.0f} s)")
    finally:
        bar.close()
    return results
