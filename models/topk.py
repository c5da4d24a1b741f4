"""Exact top-k selection with the core's tie rule (docs/architecture.md, section 6).

The k largest values win; among equal values the lower index wins. The selected indices are
returned in ascending index order, which is the order the hardware emits them in.
"""

from __future__ import annotations

import torch


def topk_indices(values: torch.Tensor, k: int) -> torch.Tensor:
    """Ascending indices of the top-k entries of a 1-D integer tensor (ties: lower index)."""
    values = torch.as_tensor(values)
    if values.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {tuple(values.shape)}")
    n = values.numel()
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if k >= n:
        return torch.arange(n, dtype=torch.int64)
    # A stable sort on descending value keeps equal values in index order.
    order = torch.sort(values.to(torch.int64), descending=True, stable=True).indices
    return torch.sort(order[:k]).values


def topk_threshold(values: torch.Tensor, k: int) -> tuple[int, int]:
    """(threshold, number of ties to take) that describe the top-k set, as the engine finds it.

    The set is every value > threshold plus the first `ties` values == threshold in index order.
    """
    values = torch.as_tensor(values).to(torch.int64)
    n = values.numel()
    if not 1 <= k <= n:
        raise ValueError(f"k must be in 1..{n}, got {k}")
    kth = int(torch.sort(values, descending=True).values[k - 1])
    greater = int((values > kth).sum())
    return kth, k - greater
