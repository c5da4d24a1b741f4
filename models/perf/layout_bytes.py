"""The one door from the performance model to the plane layout (models/layout.py, params).

Everything the model needs to know about where a token's bits lie goes through
`fetch_beat_addresses`: the bus-word addresses the fetcher reads for a set of tokens of one
plane, in order. Today every token is `plane_stride(width)` bytes of whole bus words
(docs/architecture.md section 3); when the layout changes (dense 6-bit packing), only this
module changes.
"""

from __future__ import annotations

import numpy as np

from spatten_dv.models.params import DEFAULT_PARAMS, CoreParams


def beats_per_token(width: int, params: CoreParams = DEFAULT_PARAMS) -> int:
    """Bus words one token of a `width`-bit plane occupies (0 for no plane)."""
    return params.plane_stride(width) // params.bus_bytes


def fetch_beat_addresses(base: int, tokens, width: int,
                         params: CoreParams = DEFAULT_PARAMS) -> np.ndarray:
    """Byte addresses of the bus words read to fetch `tokens` (ascending) of a plane."""
    tokens = np.asarray(tokens, dtype=np.int64)
    nb = beats_per_token(width, params)
    if nb == 0 or tokens.size == 0:
        return np.zeros(0, dtype=np.int64)
    first = base + tokens * params.plane_stride(width)
    return (first[:, None] + np.arange(nb, dtype=np.int64)[None, :] * params.bus_bytes).ravel()


def fetch_bytes(n_tokens: int, width: int, params: CoreParams = DEFAULT_PARAMS) -> int:
    """Bytes read from DRAM for `n_tokens` tokens of a `width`-bit plane."""
    return n_tokens * params.plane_stride(width)
