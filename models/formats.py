"""Fixed-point formats of Q, K and V, MSB/LSB bit planes, and their DRAM packing.

docs/architecture.md, sections 3 and 4. Everything here is integer-exact and vectorized.
"""

from __future__ import annotations

import numpy as np
import torch

from spatten_dv.models.params import DEFAULT_PARAMS, QKV_BITS, CoreParams

QKV_MAX = (1 << (QKV_BITS - 1)) - 1  # 2047
QKV_MIN = -(1 << (QKV_BITS - 1))  # -2048


def quantize_symmetric(x: torch.Tensor, scale: float | None = None) -> tuple[torch.Tensor, float]:
    """Float tensor -> (12-bit integers, scale) with x ~= int * scale, round to nearest.

    The scale defaults to max|x| / 2047 so the largest magnitude maps to 2047.
    """
    x = torch.as_tensor(x, dtype=torch.float64)
    if scale is None:
        peak = float(x.abs().max()) if x.numel() else 0.0
        scale = peak / QKV_MAX if peak > 0 else 1.0
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    q = torch.round(x / scale).clamp(QKV_MIN, QKV_MAX).to(torch.int64)
    return q, scale


def check_int12(name: str, t: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(t)
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise TypeError(f"{name}: expected an integer tensor, got {t.dtype}")
    t = t.to(torch.int64)
    if t.numel() and (int(t.min()) < QKV_MIN or int(t.max()) > QKV_MAX):
        raise ValueError(f"{name}: values must lie in [{QKV_MIN}, {QKV_MAX}] (12-bit signed)")
    return t


def msb_code(x12: torch.Tensor, width: int) -> torch.Tensor:
    """Signed `width`-bit code of the top bits of 12-bit x (arithmetic shift, truncation)."""
    return x12 >> (QKV_BITS - width)


def lsb_code(x12: torch.Tensor, msb_width: int, lsb_width: int) -> torch.Tensor:
    """Unsigned `lsb_width`-bit code of the bits just below the MSB plane."""
    return (x12 >> (QKV_BITS - msb_width - lsb_width)) & ((1 << lsb_width) - 1)


def reconstruct(code: torch.Tensor, precision: int) -> torch.Tensor:
    """12-bit value the datapath uses for a `precision`-bit signed code.

    The dropped bits are replaced by the midpoint of the interval they span (a 1 followed by
    zeros), which removes the -0.5 LSB bias of plain truncation. Full precision is exact.
    """
    shift = QKV_BITS - precision
    value = code << shift
    if shift:
        value = value + (1 << (shift - 1))
    return value


def effective(x12: torch.Tensor, precision: int) -> torch.Tensor:
    """The value the datapath sees after keeping only the top `precision` bits of x12."""
    return reconstruct(msb_code(x12, precision), precision)


def combine(msb: torch.Tensor, lsb: torch.Tensor, lsb_width: int) -> torch.Tensor:
    """Signed (msb_width + lsb_width)-bit code from the two planes."""
    return (msb << lsb_width) | lsb


# ---------------------------------------------------------------- DRAM packing


def pack_plane(codes: torch.Tensor, width: int, params: CoreParams = DEFAULT_PARAMS) -> np.ndarray:
    """Pack (tokens, D) codes of `width` bits into (tokens, D*width/8) bytes.

    Element d of a token occupies bits [d*width, d*width+width) of the token's little-endian
    bit string; no padding (the rows laid end to end are the dense plane of section 3).
    Negative codes are stored in two's complement of `width` bits.
    """
    codes = torch.as_tensor(codes, dtype=torch.int64)
    if codes.ndim != 2 or codes.shape[1] != params.head_dim:
        raise ValueError(f"codes must have shape (tokens, {params.head_dim}), got "
                         f"{tuple(codes.shape)}")
    n = codes.shape[0]
    params.token_bytes(width)  # D*width must be whole bytes
    u = (codes & ((1 << width) - 1)).numpy().astype(np.uint16)
    bits = ((u[:, :, None] >> np.arange(width, dtype=np.uint16)) & 1).astype(np.uint8)
    bits = bits.reshape(n, params.head_dim * width)
    return np.packbits(bits, axis=1, bitorder="little")


def unpack_plane(raw: np.ndarray, width: int, signed: bool,
                 params: CoreParams = DEFAULT_PARAMS) -> torch.Tensor:
    """Inverse of pack_plane: (tokens, >= D*width/8) bytes -> (tokens, D) int64 codes."""
    raw = np.asarray(raw, dtype=np.uint8)
    n = raw.shape[0]
    nbits = params.head_dim * width
    bits = np.unpackbits(raw, axis=1, bitorder="little")[:, :nbits]
    bits = bits.reshape(n, params.head_dim, width).astype(np.int64)
    values = (bits << np.arange(width, dtype=np.int64)).sum(axis=2)
    if signed:
        values = np.where(values >= (1 << (width - 1)), values - (1 << width), values)
    return torch.from_numpy(values)


def pack_query(q12: torch.Tensor, params: CoreParams = DEFAULT_PARAMS) -> int:
    """The descriptor's query field: element d in bits [12d, 12d+12), two's complement."""
    q12 = check_int12("query", q12).reshape(-1)
    if q12.numel() != params.head_dim:
        raise ValueError(f"query must have {params.head_dim} elements, got {q12.numel()}")
    word = 0
    for d, v in enumerate(q12.tolist()):  # 64 elements, once per descriptor
        word |= (v & 0xFFF) << (QKV_BITS * d)
    return word
