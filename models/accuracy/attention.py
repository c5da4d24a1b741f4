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


class DecodeBatch:
    """One decode step for a batch of configurations: row c of the batch runs policies[c]."""

    def __init__(self, policies) -> None:
        self.policies = policies

    def attend(self, module, query, key, value, attention_mask, scaling, eager, kwargs):
        layer = int(module.layer_idx)
        B, H, T, D = query.shape
        if B != len(self.policies) or T != 1:
            raise RuntimeError(f"decode attention got {(B, H, T)}, expected "
                               f"({len(self.policies)}, H, 1)")
        if scaling is None:
            scaling = D ** -0.5
        outs = [pol.attend(layer, query[c, :, 0], key[c], value[c], scaling)
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
