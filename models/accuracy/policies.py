"""Per-configuration decode policies over one window's K/V cache (docs/accuracy.md, section 2).

A policy is built from the dense prefill's importance and then called once per layer and
decode step with the step's query (H, D) and a view of every token's K/V (attention.KVView:
N tokens, the new token's last). It returns the heads' outputs (H, D) and counts the K/V bits
it fetched.
"""

from __future__ import annotations

import torch

from spatten_dv.models.accuracy.configs import FULL_BITS, StudyConfig, keep_count
from spatten_dv.models.formats import effective
from spatten_dv.models.params import DEFAULT_PARAMS, QKV_BITS


def stride_bytes(bits: int, head_dim: int) -> int:
    """Bus bytes of fetching one token's row of a `bits`-wide plane alone: its bytes rounded up
    to whole AXI words. An upper bound under the dense layout (docs/architecture.md section 3;
    models/layout.plane_fetch_beats), where consecutive kept 6-bit tokens share a word."""
    if not bits:
        return 0
    word = DEFAULT_PARAMS.axi_data_bits
    return -(-head_dim * bits // word) * (word // 8)


def top_ranked(score: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k largest of `score` (..., N), ties to the lower index, ascending."""
    order = torch.sort(score, dim=-1, descending=True, stable=True).indices[..., :k]
    return order.sort(dim=-1).values


def _quantize(x: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """12-bit integers and scale (max|x| / 2047 over `dims`), as formats.quantize_symmetric."""
    peak = x.abs().amax(dim=dims, keepdim=True).to(torch.float64)
    scale = torch.where(peak > 0, peak / (2 ** (QKV_BITS - 1) - 1), torch.ones_like(peak))
    q = torch.round(x.to(torch.float64) / scale).clamp(-(2 ** (QKV_BITS - 1)),
                                                          2 ** (QKV_BITS - 1) - 1)
    return q.to(torch.int64), scale


def _dequant(x12: torch.Tensor, bits: int, scale: torch.Tensor) -> torch.Tensor:
    return (effective(x12, bits).to(torch.float64) * scale).to(torch.float32)


class Policy:
    """Common bookkeeping: fetched bits (payload and DRAM-padded) and per-layer counts."""

    def __init__(self, cfg: StudyConfig, n_layers: int, n_heads: int, head_dim: int,
                 record: bool = False) -> None:
        self.cfg, self.L, self.H, self.D = cfg, n_layers, n_heads, head_dim
        self.bits = 0.0  # payload bits fetched
        self.bus = 0.0  # padded bytes fetched
        self.dense_bits = 0.0  # what dense 12-bit attention would fetch
        self.dense_bus = 0.0
        self.lsb_rows = 0
        self.rows = 0  # (layer, head) jobs run
        self.record = record
        self.kept_log: list[dict] = []  # with record: per (step, layer) what was kept

    def begin_step(self) -> None:
        """Called before layer 0 of every decode step."""

    def _count(self, keys: int, values: int, heads: int, n: int, lsb_keys: int = 0,
               lsb_rows: int = 0) -> None:
        kb, vb, lb = self.cfg.k_bits, self.cfg.val_bits, self.cfg.lsb_bits
        self.bits += (keys * kb + values * vb + lsb_keys * lb) * self.D
        self.bus += (keys * stride_bytes(kb, self.D) + values * stride_bytes(vb, self.D)
                     + lsb_keys * stride_bytes(lb, self.D))
        self.dense_bits += self.H * n * 2 * FULL_BITS * self.D
        self.dense_bus += self.H * n * 2 * stride_bytes(FULL_BITS, self.D)
        self.lsb_rows += lsb_rows
        self.rows += heads

    def _grouped(self, q: torch.Tensor, kvh: int) -> torch.Tensor:
        return q.reshape(kvh, self.H // kvh, -1)

    def _attend_masked(self, q, kv, scaling, keep):
        """Float attention of every head over its kept tokens among all N; keep (H, N)."""
        kvh = kv.kv.pk[kv.layer].shape[0]
        s = kv.scores(self._grouped(q, kvh)).reshape(self.H, -1) * scaling
        s = s.masked_fill(~keep, torch.finfo(s.dtype).min)
        p = torch.softmax(s, dim=-1)
        return kv.weighted(self._grouped(p, kvh)).reshape(self.H, -1), p


class DensePolicy(Policy):
    def attend(self, layer, q, kv, scaling):
        n = kv.n
        out, _ = self._attend_masked(q, kv, scaling, torch.ones(self.H, n, dtype=torch.bool))
        self._count(self.H * n, self.H * n, self.H, n)
        return out


class StreamingPolicy(Policy):
    """The first `sinks` tokens and the newest ones, keep_count(keys, N) in all."""

    def attend(self, layer, q, kv, scaling):
        n = kv.n
        kk = keep_count(self.cfg.keys, n)
        keep = torch.zeros(n, dtype=torch.bool)
        sinks = min(self.cfg.sinks, kk)
        keep[:sinks] = True
        keep[n - (kk - sinks):] = True
        if self.record:
            self.kept_log.append({"layer": layer, "n": n, "kept": keep.nonzero().flatten()})
        out, _ = self._attend_masked(q, kv, scaling, keep.expand(self.H, n))
        self._count(self.H * kk, self.H * kk, self.H, n)
        return out


class H2OPolicy(Policy):
    """Per layer and head: the newest half of the budget plus the heavy hitters (largest
    accumulated attention, prefill included) among the older tokens not yet evicted; every
    other older token is evicted for good."""

    def __init__(self, cfg, n_layers, n_heads, head_dim, prefill_tokens, n_max, record=False):
        super().__init__(cfg, n_layers, n_heads, head_dim, record)
        t = prefill_tokens[0].shape[-1]
        self.acc = torch.zeros(n_layers, n_heads, n_max, dtype=torch.float64)
        for layer, col in enumerate(prefill_tokens):
            self.acc[layer, :, :t] = col
        self.alive = torch.ones(n_layers, n_heads, n_max, dtype=torch.bool)

    def attend(self, layer, q, kv, scaling):
        n = kv.n
        kk = keep_count(self.cfg.keys, n)
        heavy = kk // 2
        start = n - (kk - heavy)
        keep = torch.zeros(self.H, n, dtype=torch.bool)
        keep[:, start:] = True
        if heavy:
            alive = self.alive[layer, :, :start]
            score = self.acc[layer, :, :start].masked_fill(~alive, -torch.inf)
            idx = top_ranked(score, heavy)
            chosen = torch.zeros_like(alive)
            chosen.scatter_(1, idx, True)
            chosen &= alive  # fewer than `heavy` alive: the -inf picks are not kept
            alive &= chosen
            keep[:, :start] = chosen
        else:
            self.alive[layer, :, :start] = False
        if self.record:
            self.kept_log.append({"layer": layer, "n": n, "kept": keep.clone()})
        out, p = self._attend_masked(q, kv, scaling, keep)
        self.acc[layer, :, :n] += p.to(torch.float64)
        kept = int(keep.sum())
        self._count(kept, kept, self.H, n)
        return out


class SpAttenPolicy(Policy):
    """Cascade token and head pruning re-selected at every step, progressive quantization,
    local value pruning (docs/architecture.md sections 5-7 at decode time).

    Importance: token = attention received (summed over heads not pruned, layers, queries),
    head = sum of |output| in V's units; the prefill's sums over all layers and prompt
    queries, then every decode layer adds its own (so layer l uses layers < l of this step).
    """

    def __init__(self, cfg, n_layers, n_heads, head_dim, prefill_tokens, prefill_heads,
                 n_max, record=False):
        super().__init__(cfg, n_layers, n_heads, head_dim, record)
        t = prefill_tokens[0].shape[-1]
        self.imp = torch.zeros(n_max, dtype=torch.float64)
        self.imp[:t] = sum(col.sum(0) for col in prefill_tokens)
        self.head_imp = sum(prefill_heads).clone()
        self.ratios = cfg.token_ratios(n_layers)
        self.head_keep = cfg.head_counts(n_layers, n_heads)
        self.alive = torch.ones(n_layers, n_max, dtype=torch.bool)  # reselect=False only
        self.tokens: torch.Tensor | None = None  # kept at the previous layer of this step
        self.heads = torch.ones(n_heads, dtype=torch.bool)
        self.step = -1

    def begin_step(self) -> None:
        self.step += 1
        self.tokens = None
        self.heads = torch.ones(self.H, dtype=torch.bool)
        if self.cfg.imp_shift and self.step > 0:
            self.imp *= 2.0 ** -self.cfg.imp_shift
            self.head_imp *= 2.0 ** -self.cfg.imp_shift

    def _select_tokens(self, layer: int, n: int) -> torch.Tensor:
        """Ascending indices of the tokens kept at this layer and step."""
        cfg = self.cfg
        if self.tokens is None:  # layer 0: every token (or those not pruned for good)
            cand = (torch.arange(n) if cfg.reselect
                    else self.alive[layer, :n].nonzero().flatten())
        else:
            cand = self.tokens
            if not cfg.reselect:
                cand = cand[self.alive[layer, cand]]
        kk = min(keep_count(self.ratios[layer], n), len(cand))
        if kk < len(cand):
            score = self.imp[cand]
            protected = (cand < cfg.protect_sink) | (cand >= n - cfg.protect_recent)
            score = score.masked_fill(protected, torch.inf)
            keep = cand[top_ranked(score, kk)]
            if not cfg.reselect:
                gone = torch.ones(n, dtype=torch.bool)
                gone[keep] = False
                gone[~self._mask(cand, n)] = False
                self.alive[layer, :n] &= ~gone
        else:
            keep = cand
        self.tokens = keep
        return keep

    @staticmethod
    def _mask(idx: torch.Tensor, n: int) -> torch.Tensor:
        m = torch.zeros(n, dtype=torch.bool)
        m[idx] = True
        return m

    def _select_heads(self, layer: int) -> torch.Tensor:
        kh = min(self.head_keep[layer], int(self.heads.sum()))
        if kh == int(self.heads.sum()):
            return self.heads
        score = self.head_imp.masked_fill(~self.heads, -torch.inf)
        keep = torch.zeros(self.H, dtype=torch.bool)
        keep[top_ranked(score, kh)] = True
        self.heads = keep
        return keep

    def attend(self, layer, q, kv, scaling):
        cfg, H = self.cfg, self.H
        n = kv.n
        idx = self._select_tokens(layer, n)
        heads = self._select_heads(layer)
        nk = len(idx)
        bits = (cfg.msb_bits, cfg.v_bits) if cfg.quantized else (None, None)
        if cfg.quantized:
            q12, sq = _quantize(q, (-1,))
            q = _dequant(q12, QKV_BITS, sq)
        k = kv.gather("k", idx, bits[0])  # (KVH, nk, D)
        kvh = k.shape[0]
        qg = self._grouped(q, kvh)
        p = torch.softmax(torch.matmul(qg, k.transpose(1, 2)).reshape(H, nk) * scaling, dim=-1)
        refetch = None
        nr = 0
        if cfg.quantized and cfg.lsb_bits and cfg.requant_thresh > 0:
            refetch = (p.amax(-1) < cfg.requant_thresh) & heads
            nr = int(refetch.sum())
            if nr:
                kf = kv.gather("k", idx, cfg.msb_bits + cfg.lsb_bits)
                s = torch.matmul(qg, kf.transpose(1, 2)).reshape(H, nk) * scaling
                p = torch.where(refetch[:, None], torch.softmax(s, dim=-1), p)
        nv = keep_count(cfg.values, nk) if cfg.values < 1 else nk
        if nv < nk:  # local value pruning: top nv probabilities per head, no renormalization
            top = p.topk(nv, dim=-1).indices
            pv = torch.zeros_like(p).scatter_(1, top, p.gather(1, top))
        else:
            pv = p
        v = kv.gather("v", idx, bits[1])
        out = torch.matmul(self._grouped(pv, kvh), v).reshape(H, -1) * heads[:, None]
        hw = heads.to(torch.float64)
        self.imp.index_add_(0, idx, (p.to(torch.float64) * hw[:, None]).sum(0))
        unit = kv.v_unit().repeat_interleave(H // kvh)
        self.head_imp += out.abs().sum(-1).to(torch.float64) / unit * hw
        nh = int(heads.sum())
        self._count(nh * nk, nh * nv, nh, n, lsb_keys=nr * nk, lsb_rows=nr)
        if self.record:
            self.kept_log.append({"layer": layer, "n": n, "kept": idx.clone(),
                                  "heads": heads.clone(), "values": nv, "refetch": nr})
        return out


def make_policy(cfg: StudyConfig, n_layers: int, n_heads: int, head_dim: int,
                prefill_tokens: list[torch.Tensor], prefill_heads: list[torch.Tensor],
                n_max: int, record: bool = False) -> Policy:
    """A fresh policy for one window; prefill_* are one window's (H, T) and (H,) records."""
    if cfg.method == "dense":
        return DensePolicy(cfg, n_layers, n_heads, head_dim, record)
    if cfg.method == "streaming":
        return StreamingPolicy(cfg, n_layers, n_heads, head_dim, record)
    if cfg.method == "h2o":
        return H2OPolicy(cfg, n_layers, n_heads, head_dim, prefill_tokens, n_max, record)
    return SpAttenPolicy(cfg, n_layers, n_heads, head_dim, prefill_tokens, prefill_heads,
                         n_max, record)
