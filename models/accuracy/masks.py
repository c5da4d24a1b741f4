"""The cascades, sequential in the query position t: SpAtten token/head pruning keep sets,
H2O eviction, and the StreamingLLM mask."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from spatten_dv.models.accuracy.configs import keep_count


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
