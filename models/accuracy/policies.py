"""Per-configuration decode policies over one window's K/V cache (docs/accuracy.md, section 2).

A policy is built from the dense prefill's importance and then called once per layer and
decode step with the step's query (H, D) and every cached token's K/V (KVH, N, D), the new
token's last. It returns the heads' outputs (H, D) and counts the K/V bits it fetched.
"""

from __future__ import annotations

import torch

from spatten_dv.models.accuracy.attention import v_unit
from spatten_dv.models.accuracy.configs import FULL_BITS, StudyConfig, keep_count
from spatten_dv.models.formats import effective
from spatten_dv.models.params import DEFAULT_PARAMS, QKV_BITS


def stride_bytes(bits: int, head_dim: int) -> int:
    """Bytes of one token's row of a `bits`-wide plane in DRAM (padded to the AXI word)."""
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

    @staticmethod
    def _expand(x: torch.Tensor, heads: int) -> torch.Tensor:
        return x.repeat_interleave(heads // x.shape[0], dim=0)

    def _attend_masked(self, q, k, v, scaling, keep):
        """Float attention of every head over its kept tokens; keep (H, N) bool."""
        k, v = self._expand(k, self.H), self._expand(v, self.H)
        s = torch.einsum("hd,hnd->hn", q, k) * scaling
        s = s.masked_fill(~keep, torch.finfo(s.dtype).min)
        p = torch.softmax(s, dim=-1)
        return torch.einsum("hn,hnd->hd", p, v), p


class DensePolicy(Policy):
    def attend(self, layer, q, k, v, scaling):
        n = k.shape[1]
        out, _ = self._attend_masked(q, k, v, scaling, torch.ones(self.H, n, dtype=torch.bool))
        self._count(self.H * n, self.H * n, self.H, n)
        return out


class StreamingPolicy(Policy):
    """The first `sinks` tokens and the newest ones, keep_count(keys, N) in all."""

    def attend(self, layer, q, k, v, scaling):
        n = k.shape[1]
        kk = keep_count(self.cfg.keys, n)
        keep = torch.zeros(n, dtype=torch.bool)
        sinks = min(self.cfg.sinks, kk)
        keep[:sinks] = True
        keep[n - (kk - sinks):] = True
        if self.record:
            self.kept_log.append({"layer": layer, "n": n, "kept": keep.nonzero().flatten()})
        out, _ = self._attend_masked(q, k, v, scaling, keep.expand(self.H, n))
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

    def attend(self, layer, q, k, v, scaling):
        n = k.shape[1]
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
        out, p = self._attend_masked(q, k, v, scaling, keep)
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
        cfg = self.cfg
        cand = (torch.ones(n, dtype=torch.bool) if self.tokens is None
                else torch.cat([self.tokens, torch.ones(n - len(self.tokens), dtype=torch.bool)]))
        if not cfg.reselect:
            cand &= self.alive[layer, :n]
        kk = min(keep_count(self.ratios[layer], n), int(cand.sum()))
        score = self.imp[:n].clone()
        score[:cfg.protect_sink] = torch.inf
        if cfg.protect_recent:
            score[max(0, n - cfg.protect_recent):] = torch.inf
        score[~cand] = -torch.inf
        keep = torch.zeros(n, dtype=torch.bool)
        keep[top_ranked(score, kk)] = True
        if not cfg.reselect:
            self.alive[layer, :n] &= keep | ~cand
        self.tokens = keep
        return keep

    def _select_heads(self, layer: int) -> torch.Tensor:
        kh = min(self.head_keep[layer], int(self.heads.sum()))
        score = self.head_imp.masked_fill(~self.heads, -torch.inf)
        keep = torch.zeros(self.H, dtype=torch.bool)
        keep[top_ranked(score, kh)] = True
        self.heads = keep
        return keep

    def attend(self, layer, q, k, v, scaling):
        cfg, H = self.cfg, self.H
        n = k.shape[1]
        keep = self._select_tokens(layer, n)
        heads = self._select_heads(layer)
        idx = keep.nonzero().flatten()
        nk = len(idx)
        if cfg.quantized:
            q12, sq = _quantize(q, (-1,))
            k12, sk = _quantize(k, (-2, -1))
            v12, sv = _quantize(v, (-2, -1))
            qf = _dequant(q12, QKV_BITS, sq)
            kq = self._expand(_dequant(k12[:, idx], cfg.msb_bits, sk), H)
            vq = self._expand(_dequant(v12[:, idx], cfg.v_bits, sv), H)
        else:
            qf, kq, vq = q, self._expand(k[:, idx], H), self._expand(v[:, idx], H)
        p = torch.softmax(torch.einsum("hd,hnd->hn", qf, kq) * scaling, dim=-1)
        refetch = torch.zeros(H, dtype=torch.bool)
        if cfg.quantized and cfg.lsb_bits and cfg.requant_thresh > 0:
            refetch = (p.amax(-1) < cfg.requant_thresh) & heads
            if refetch.any():
                kf = self._expand(_dequant(k12[:, idx], cfg.msb_bits + cfg.lsb_bits, sk), H)
                s = torch.einsum("hd,hnd->hn", qf[refetch], kf[refetch]) * scaling
                p[refetch] = torch.softmax(s, dim=-1)
        nv = keep_count(cfg.values, nk) if cfg.values < 1 else nk
        if nv < nk:  # local value pruning: top nv probabilities per head, no renormalization
            top = top_ranked(p, nv)
            pv = torch.zeros_like(p).scatter_(1, top, p.gather(1, top))
        else:
            pv = p
        out = torch.einsum("hn,hnd->hd", pv, vq) * heads[:, None]
        hw = heads.to(torch.float64)
        self.imp[idx] += (p.to(torch.float64) * hw[:, None]).sum(0)
        unit = self._expand(v_unit(v)[:, None], H)[:, 0]
        self.head_imp += out.abs().sum(-1).to(torch.float64) / unit * hw
        nh = int(heads.sum())
        nr = int(refetch.sum())
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
