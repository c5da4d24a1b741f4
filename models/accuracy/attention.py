"""The study's attention function: a dense prefill that records importance, then decode steps
in which every batch row (one per configuration) applies its own policy (models/accuracy/
policies.py) to the cached K/V."""

from __future__ import annotations

import sys

import torch

from spatten_dv.models.params import QKV_BITS

ATTN_NAME = "spatten_accuracy"
QMAX = (1 << (QKV_BITS - 1)) - 1


def v_unit(value: torch.Tensor) -> torch.Tensor:
    """V's integer unit per KV head: max|V| / 2047 over the tokens and dims (..., KVH, N, D)."""
    peak = value.abs().amax(dim=(-2, -1)).to(torch.float64)
    return torch.where(peak > 0, peak / QMAX, torch.ones_like(peak))


class PrefillRecorder:
    """Dense (eager) attention over the prompt; records per layer the attention each token got
    (summed over the prompt queries, per head) and each head's |output| in V's units."""

    def __init__(self, n_layers: int) -> None:
        self.tokens: list[torch.Tensor | None] = [None] * n_layers  # (B, H, T)
        self.heads: list[torch.Tensor | None] = [None] * n_layers  # (B, H)

    def attend(self, module, query, key, value, attention_mask, scaling, eager, kwargs):
        layer = int(module.layer_idx)
        out, probs = eager(module, query, key, value, attention_mask, scaling=scaling, **kwargs)
        self.tokens[layer] = probs.sum(dim=2).to(torch.float64)
        groups = query.shape[1] // key.shape[1]
        unit = v_unit(value).repeat_interleave(groups, dim=1)  # (B, H)
        self.heads[layer] = out.abs().sum(dim=(1, 3)).to(torch.float64) / unit
        return out, probs


class WindowKV:
    """One window's K/V for every configuration: the prompt's (shared, from the prefill) and
    each configuration's decoded tokens (written step by step), per layer.

    Quantized K/V use per (layer, KV head) scales calibrated on the prompt (max|x| / 2047);
    decoded tokens are clamped to that range. So a token's quantized value depends only on its
    own K/V, and the prompt's dequantized planes are computed once per window and width.
    """

    def __init__(self, prompt_keys, prompt_values, batch: int, steps: int) -> None:
        self.pk = [k[0] for k in prompt_keys]  # per layer (KVH, T, D)
        self.pv = [v[0] for v in prompt_values]
        kvh, self.T, d = self.pk[0].shape
        L = len(self.pk)
        self.tk = torch.zeros(L, batch, kvh, steps, d)
        self.tv = torch.zeros(L, batch, kvh, steps, d)
        self.n_dec = 0  # decoded tokens written (the same for every layer after a step)
        self.k_scale = [_scale(k) for k in self.pk]  # (KVH, 1, 1) float64
        self.v_scale = [_scale(v) for v in self.pv]
        self._planes: dict = {}

    def write(self, layer: int, key: torch.Tensor, value: torch.Tensor, step: int) -> None:
        self.tk[layer, :, :, step] = key[:, :, 0]
        self.tv[layer, :, :, step] = value[:, :, 0]

    def view(self, layer: int, row: int, n: int) -> KVView:
        return KVView(self, layer, row, n)

    def prompt_plane(self, layer: int, which: str, bits: int) -> torch.Tensor:
        key = (layer, which, bits)
        if key not in self._planes:
            x, scale = ((self.pk[layer], self.k_scale[layer]) if which == "k"
                        else (self.pv[layer], self.v_scale[layer]))
            self._planes[key] = dequantize(x, scale, bits)
        return self._planes[key]


def _scale(x: torch.Tensor) -> torch.Tensor:
    peak = x.abs().amax(dim=(-2, -1), keepdim=True).to(torch.float64)
    return torch.where(peak > 0, peak / QMAX, torch.ones_like(peak))


def dequantize(x: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    """x as 12-bit integers at `scale` (clamped), top `bits` kept (formats.effective)."""
    from spatten_dv.models.formats import effective

    q = torch.round(x.to(torch.float64) / scale).clamp(-QMAX - 1, QMAX).to(torch.int64)
    return (effective(q, bits).to(torch.float64) * scale).to(torch.float32)


class KVView:
    """One configuration's N = T + decoded tokens of one layer at one decode step."""

    def __init__(self, kv: WindowKV, layer: int, row: int, n: int) -> None:
        self.kv, self.layer, self.row, self.n = kv, layer, row, n
        self.T = kv.T

    def _tail(self, which: str) -> torch.Tensor:
        t = self.kv.tk if which == "k" else self.kv.tv
        return t[self.layer, self.row, :, :self.n - self.T]

    def full(self, which: str) -> torch.Tensor:
        """(KVH, N, D) float."""
        p = self.kv.pk[self.layer] if which == "k" else self.kv.pv[self.layer]
        return torch.cat([p, self._tail(which)], dim=1)

    def gather(self, which: str, idx: torch.Tensor, bits: int | None = None) -> torch.Tensor:
        """(KVH, len(idx), D): the tokens idx (ascending), float or quantized to `bits`."""
        split = int(torch.searchsorted(idx, self.T))
        ip, it = idx[:split], idx[split:] - self.T
        if bits is None:
            p = self.kv.pk[self.layer] if which == "k" else self.kv.pv[self.layer]
            tail = self._tail(which).index_select(1, it)
        else:
            p = self.kv.prompt_plane(self.layer, which, bits)
            scale = (self.kv.k_scale if which == "k" else self.kv.v_scale)[self.layer]
            tail = dequantize(self._tail(which).index_select(1, it), scale, bits)
        return torch.cat([p.index_select(1, ip), tail], dim=1)

    def scores(self, qg: torch.Tensor) -> torch.Tensor:
        """q . k over all N tokens (float): qg (KVH, G, D) -> (KVH, G, N)."""
        pk = self.kv.pk[self.layer]
        return torch.cat([torch.matmul(qg, pk.transpose(1, 2)),
                          torch.matmul(qg, self._tail("k").transpose(1, 2))], dim=-1)

    def weighted(self, p: torch.Tensor) -> torch.Tensor:
        """sum_n p_n V_n over all N tokens (float): p (KVH, G, N) -> (KVH, G, D)."""
        return (torch.matmul(p[..., :self.T], self.kv.pv[self.layer])
                + torch.matmul(p[..., self.T:], self._tail("v")))

    def v_unit(self) -> torch.Tensor:
        """V's integer unit per KV head (the prompt's scale)."""
        return self.kv.v_scale[self.layer].reshape(-1)


class DecodeBatch:
    """One decode step for a batch of configurations: row c of the batch runs policies[c].

    The model runs without a transformers cache: each attention call gets the step's own
    K/V, which go into `kv` before the policies attend over everything.
    """

    def __init__(self, policies, kv: WindowKV) -> None:
        self.policies, self.kv = policies, kv
        self.step = 0

    def attend(self, module, query, key, value, attention_mask, scaling, eager, kwargs):
        layer = int(module.layer_idx)
        B, H, T, D = query.shape
        if B != len(self.policies) or T != 1:
            raise RuntimeError(f"decode attention got {(B, H, T)}, expected "
                               f"({len(self.policies)}, H, 1)")
        if scaling is None:
            scaling = D ** -0.5
        self.kv.write(layer, key, value, self.step)
        n = self.kv.T + self.step + 1
        outs = [pol.attend(layer, query[c, :, 0], self.kv.view(layer, c, n), scaling)
                for c, pol in enumerate(self.policies)]
        return torch.stack(outs)[:, None], None  # (B, 1, H, D)


_ACTIVE: list = []


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
