"""Placing a head's K and V planes in a DramImage (docs/architecture.md, section 3)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spatten_dv.models.formats import check_int12, lsb_code, msb_code, pack_plane
from spatten_dv.models.memory import DramImage
from spatten_dv.models.params import DEFAULT_PARAMS, CoreParams


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

    k12 and v12 are (tokens, D) 12-bit integers. Each plane starts on a 4 KiB boundary.
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
    k_lsb = align(k_msb + n * params.plane_stride(msb_bits))
    if lsb_bits:
        memory.write(k_lsb, pack_plane(lsb_code(k12, msb_bits, lsb_bits), lsb_bits,
                                       params).reshape(-1))
    v = align(k_lsb + n * params.plane_stride(lsb_bits))
    memory.write(v, pack_plane(msb_code(v12, v_bits), v_bits, params).reshape(-1))
    return PlaneBases(k_msb, k_lsb, v, align(v + n * params.plane_stride(v_bits)))
