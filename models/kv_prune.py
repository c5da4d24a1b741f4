"""SpAtten-style KV-cache token pruning for decoder LMs (the policy of SpAtten-LLM's chatbot).

Per layer the cache keeps three kinds of tokens:

* the first `sink` tokens of the conversation (attention sinks), always;
* the `recent` most recent tokens, always;
* in between, the tokens with the largest *accumulated attention probability*: SpAtten's token
  importance, the sum of the softmax probabilities a token has received from every query head
  and every query row (prefill rows and decode steps) of that layer since it entered the cache.

Within a turn pruning is cascade: an evicted token leaves the attended set. Between turns the
set is re-selected (`reselect`, SpAtten's re-selection per step, docs/accuracy.md): every token
fed so far competes again by its accumulated importance (frozen while it was out), within the
budget, so a token evicted earlier can come back. Importance is kept per layer (each layer
selects its own tokens), as in SpAtten-LLM; every layer keeps the same *number* of tokens, so
all layers' caches have one length.

Ties in importance: the lower index (the older token) is kept, the rule of the core's top-k
engine (models/topk.py).

The budget is a bound on the number of K/V rows any attention call works on, not only on the
cache between steps: before a forward pass over `n` new tokens the cache is pruned to at most
`budget - n` tokens (`plan_feed`), and a prompt too long for that is fed in chunks. So
`budget >= sink + recent + 1` is required (room for at least one new token).

The state of all layers lives in two (layers, budget) tensors, so an eviction is one sort for
every layer at once (a decode step past the budget evicts one token per layer).

This module knows nothing of transformers; `spatten_dv.chat` connects it to a model.
"""

from __future__ import annotations

import torch


def check_budget(budget: int, sink: int, recent: int) -> None:
    """ValueError unless sink >= 0, recent >= 0 and budget >= sink + recent + 1."""
    if sink < 0 or recent < 0:
        raise ValueError(f"sink and recent must be >= 0, got sink={sink} recent={recent}")
    if budget < sink + recent + 1:
        raise ValueError(f"budget {budget} must be at least sink + recent + 1 = "
                         f"{sink + recent + 1} (room for one new token)")


def keep_indices(importance: torch.Tensor, n_keep: int, sink: int, recent: int) -> torch.Tensor:
    """Ascending indices (int64) of the `n_keep` tokens a cache keeps, along the last dim.

    `importance` is (..., n), e.g. (layers, tokens); index order is age order (index 0 is the
    oldest). The first `sink` and the last `recent` indices are always kept (n_keep must leave
    room for them); the other places go to the middle tokens of largest importance, ties to the
    lower index. With n_keep >= n, every index is kept.
    """
    importance = torch.as_tensor(importance)
    if importance.ndim < 1:
        raise ValueError("importance must have at least one dimension")
    n, lead = importance.shape[-1], importance.shape[:-1]
    if n_keep >= n:
        return torch.arange(n, dtype=torch.int64).expand(*lead, n).clone()
    if n_keep < sink + recent:
        raise ValueError(f"n_keep={n_keep} < sink + recent = {sink + recent}")
    lo, hi = sink, n - recent  # the middle: [lo, hi); n_keep < n so hi > lo
    # stable sort on descending importance: equal values stay in index order (lower wins)
    order = torch.sort(importance[..., lo:hi], dim=-1, descending=True, stable=True).indices
    chosen = torch.sort(order[..., : n_keep - sink - recent], dim=-1).values + lo
    return torch.cat([torch.arange(lo, dtype=torch.int64).expand(*lead, lo), chosen,
                      torch.arange(hi, n, dtype=torch.int64).expand(*lead, n - hi)], dim=-1)


class KVPrunePolicy:
    """Token importance and eviction for `n_layers` caches that share one length.

    Use: before a forward pass over new tokens, `plan_feed` says how many tokens each layer may
    keep and how many new tokens the pass may take; `evict(n_keep)` gives, per layer, the cache
    rows to keep (apply them to that layer's K and V with index_select). During the pass,
    `observe(layer, probs, new_positions)` adds the pass's tokens to a layer and accumulates
    the attention probabilities of that layer's call.
    """

    def __init__(self, n_layers: int, budget: int, sink: int = 4, recent: int = 64) -> None:
        check_budget(budget, sink, recent)
        self.n_layers, self.budget, self.sink, self.recent = n_layers, budget, sink, recent
        # row l, columns [0, lengths[l]): layer l's cache in cache order (ascending position)
        self.positions = torch.zeros(n_layers, budget, dtype=torch.int64)
        self.importance = torch.zeros(n_layers, budget, dtype=torch.float64)
        self.lengths = [0] * n_layers
        self.evicted = 0  # tokens evicted per layer so far (the same for every layer)
        self.restored = 0  # tokens brought back by re-selection (summed over layers)
        # every token fed so far, by absolute position: its accumulated importance per layer
        self.history = torch.zeros(n_layers, max(budget, 16), dtype=torch.float64)
        self.n_fed = [0] * n_layers

    def length(self, layer: int = 0) -> int:
        return self.lengths[layer]

    def kept_positions(self, layer: int) -> torch.Tensor:
        """Absolute positions of the tokens layer `layer` holds, in cache order."""
        return self.positions[layer, : self.lengths[layer]].clone()

    def layer_importance(self, layer: int) -> torch.Tensor:
        return self.importance[layer, : self.lengths[layer]].clone()

    def plan_feed(self, cache_len: int, n_new: int) -> tuple[int, int]:
        """(tokens to keep before the next pass, new tokens that pass may take).

        Keeps as many cached tokens as the budget allows; if even pruning down to sink + recent
        leaves no room for all `n_new`, the pass takes what fits and the caller feeds the rest
        in later passes.
        """
        if n_new < 1:
            raise ValueError(f"n_new must be >= 1, got {n_new}")
        if cache_len + n_new <= self.budget:
            return cache_len, n_new
        keep = max(min(cache_len, self.sink + self.recent), self.budget - n_new)
        return keep, min(n_new, self.budget - keep)

    def observe(self, layer: int, probs: torch.Tensor, new_positions: torch.Tensor) -> None:
        """Add the pass's new tokens to a layer, then accumulate the probabilities they produced.

        `probs`: softmax probabilities of one attention call, shape (..., queries, keys) with
        keys = cached tokens + new tokens (any leading dims, e.g. batch and heads, are summed).
        """
        new_positions = torch.as_tensor(new_positions, dtype=torch.int64).reshape(-1)
        n0 = self.lengths[layer]
        n = n0 + new_positions.numel()
        if n > self.budget:
            raise ValueError(f"layer {layer}: {n0} + {new_positions.numel()} tokens exceed the "
                             f"budget {self.budget} (plan_feed and evict first)")
        if probs.shape[-1] != n:
            raise ValueError(f"layer {layer}: probabilities over {probs.shape[-1]} keys, the "
                             f"cache holds {n0} + {new_positions.numel()} new tokens")
        if n0 and n > n0 and int(new_positions[0]) <= int(self.positions[layer, n0 - 1]):
            raise ValueError("new positions must follow the cached ones")
        if int(new_positions[0]) != self.n_fed[layer] or (
                new_positions.numel() > 1 and bool((new_positions.diff() != 1).any())):
            raise ValueError(f"layer {layer}: new positions must continue the conversation "
                             f"at {self.n_fed[layer]}")
        self.positions[layer, n0:n] = new_positions
        self.importance[layer, n0:n] = 0.0
        self.importance[layer, :n] += probs.detach().reshape(-1, n).sum(0, dtype=torch.float64)
        self.lengths[layer] = n
        end = int(new_positions[-1]) + 1
        if end > self.history.shape[1]:
            grown = torch.zeros(self.n_layers, 2 * end, dtype=torch.float64)
            grown[:, :self.history.shape[1]] = self.history
            self.history = grown
        self.n_fed[layer] = end
        self.history[layer, self.positions[layer, :n]] = self.importance[layer, :n]

    def evict(self, n_keep: int) -> torch.Tensor | None:
        """Prune every layer to `n_keep` tokens: the kept cache rows, (layers, n_keep) ascending
        per layer, or None if there is nothing to evict."""
        n = self.lengths[0]
        if any(length != n for length in self.lengths):
            raise ValueError(f"layers hold different numbers of tokens: {self.lengths}")
        if n_keep >= n:
            return None
        idx = keep_indices(self.importance[:, :n], n_keep, self.sink, self.recent)
        self.positions[:, :n_keep] = self.positions[:, :n].gather(1, idx)
        self.importance[:, :n_keep] = self.importance[:, :n].gather(1, idx)
        self.lengths = [n_keep] * self.n_layers
        self.evicted += n - n_keep
        return idx

    def reselect(self, n_keep: int) -> torch.Tensor:
        """Re-select every layer's set from all tokens fed so far: the sink, the recent and the
        most important of the rest (keep_indices over the whole history), n_keep per layer
        (at most the tokens fed). Returns the kept absolute positions (layers, n_keep),
        ascending per layer."""
        n = self.n_fed[0]
        if any(f != n for f in self.n_fed):
            raise ValueError(f"layers were fed different numbers of tokens: {self.n_fed}")
        n_keep = min(n_keep, n)
        if n_keep > self.budget:
            raise ValueError(f"n_keep {n_keep} exceeds the budget {self.budget}")
        idx = keep_indices(self.history[:, :n], n_keep, self.sink, self.recent)
        for layer in range(self.n_layers):
            before = set(self.kept_positions(layer).tolist())
            self.restored += len(set(idx[layer].tolist()) - before)
            self.evicted += len(before - set(idx[layer].tolist())) if layer == 0 else 0
        self.positions[:, :n_keep] = idx
        self.importance[:, :n_keep] = self.history[:, :n].gather(1, idx)
        self.lengths = [n_keep] * self.n_layers
        return idx
