"""The one door from the performance model to the plane layout (models/layout.py).

Everything the model needs to know about where a token's bits lie goes through
`fetch_beat_addresses`: the bus-word addresses the fetcher reads for a set of tokens of one
plane, in order, from the dense packing of models/layout.py (`plane_fetch_words`: two 6-bit
tokens may share a bus word).
"""

from __future__ import annotations

import numpy as np

from spatten_dv.models.layout import plane_fetch_words
from spatten_dv.models.params import DEFAULT_PARAMS, CoreParams


def fetch_beat_addresses(base: int, tokens, width: int,
                         params: CoreParams = DEFAULT_PARAMS) -> np.ndarray:
    """Byte addresses of the bus words read to fetch `tokens` (ascending) of a plane."""
    tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
    if width == 0 or tokens.size == 0:
        return np.zeros(0, dtype=np.int64)
    return base + plane_fetch_words(tokens, width, params).astype(np.int64) * params.bus_bytes


def beats_per_token(width: int, params: CoreParams = DEFAULT_PARAMS) -> int:
    """Bus words read for one token (token 0) of a `width`-bit plane (0 for no plane)."""
    return int(fetch_beat_addresses(0, [0], width, params).size)
