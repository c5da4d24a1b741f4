"""The DRAM layout of K and V planes (docs/architecture.md, section 3): where a token's bits
are, which bus words fetching a set of tokens reads, and placing a head's planes in a DramImage.

A plane is one dense bit string: token t's D*w bits start at byte t * token_bytes(w). The
fetcher reads, for every run of consecutive kept tokens, the bus words covering the run's bytes;
two tokens that share a bus word (6-bit planes: an even token's tail and the next odd token's
head) cost it once. `plane_fetch_beats` is that count: the model's byte counters, the RTL's
`beats`, the workload summaries and the performance model all use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spatten_dv.models.formats import check_int12, lsb_code, msb_code, pack_plane
from spatten_dv.models.memory import DramImage
from spatten_dv.models.params import DEFAULT_PARAMS, CoreParams


def plane_bytes(n_tokens: int, width: int, params: CoreParams = DEFAULT_PARAMS) -> int:
    """Bytes a plane of n_tokens occupies, rounded up to whole bus words (the last token's
    word is read whole)."""
    w = params.bus_bytes
    return -(-n_tokens * params.token_bytes(width) // w) * w


def token_words(tokens, width: int, params: CoreParams = DEFAULT_PARAMS
                ) -> tuple[np.ndarray, np.ndarray]:
    """(first, last) bus-word index, relative to the plane base, of each token's bytes."""
    t = np.asarray(tokens, dtype=np.int64).reshape(-1)
    tb, w = params.token_bytes(width), params.bus_bytes
    return t * tb // w, ((t + 1) * tb - 1) // w


def plane_fetch_words(tokens, width: int, params: CoreParams = DEFAULT_PARAMS) -> np.ndarray:
    """Bus-word indices (relative to the plane base, ascending, each once) that fetching
    `tokens` (ascending) reads: the union of the tokens' word ranges."""
    first, last = token_words(tokens, width, params)
    if first.size == 0:
        return np.zeros(0, dtype=np.int64)
    counts = last - first + 1
    starts = np.repeat(first, counts)
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.unique(starts + offsets)


def plane_fetch_beats(tokens, width: int, params: CoreParams = DEFAULT_PARAMS) -> int:
    """AXI R beats (bus words) of fetching `tokens` (ascending) of a `width`-bit plane.

    Each token costs the words its bytes touch; a token whose first word is the previous
    token's last word (consecutive kept tokens sharing a word) costs one word less. Words of
    tokens that are not consecutive never coincide (the gap is a whole token, >= one word).
    """
    first, last = token_words(tokens, width, params)
    if first.size == 0:
        return 0
    shared = int((first[1:] == last[:-1]).sum())
    return int((last - first + 1).sum()) - shared


@dataclass(frozen=True)
class PlaneBases:
    k_msb_base: int
    k_lsb_base: int
    v_base: int
    end: int  # first free byte after the three planes


def write_head(memory: DramImage, base: int, k12: torch.Tensor, v12: torch.Tensor,
               msb_bits: int, lsb_bits: int, v_bits: int,
               params: CoreParams = DEFAULT_PARAMS) -> PlaneBases:
    """Write K as an MSB plane and an LSB plane, and V as one plane, from `base` upward.

    k12 and v12 are (tokens, D) 12-bit integers. Each plane starts on a 4 KiB boundary and is
    one dense byte string (token t at t * token_bytes(w)).
    """
    k12 = check_int12("K", k12)
    v12 = check_int12("V", v12)
    if k12.shape != v12.shape or k12.ndim != 2:
        raise ValueError(f"K and V must both be (tokens, D); got {tuple(k12.shape)} and "
                         f"{tuple(v12.shape)}")

    def align(a: int) -> int:
        return (a + 4095) & ~4095

    n = k12.shape[0]
    k_msb = align(base)
    memory.write(k_msb, pack_plane(msb_code(k12, msb_bits), msb_bits, params).reshape(-1))
    k_lsb = align(k_msb + plane_bytes(n, msb_bits, params))
    if lsb_bits:
        memory.write(k_lsb, pack_plane(lsb_code(k12, msb_bits, lsb_bits), lsb_bits,
                                       params).reshape(-1))
    v = align(k_lsb + plane_bytes(n, lsb_bits, params))
    memory.write(v, pack_plane(msb_code(v12, v_bits), v_bits, params).reshape(-1))
    return PlaneBases(k_msb, k_lsb, v, align(v + plane_bytes(n, v_bits, params)))
