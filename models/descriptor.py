"""The job descriptor and the job result: fields, widths, validation and bit packing.

A job is one attention of one query over the kept tokens of one (step, layer, head)
(docs/architecture.md, section 2). The field tables below are the single source of the
packed layouts; the RTL's descriptor and result buses follow them LSB first.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import IntEnum

import torch

from spatten_dv.models.formats import check_int12
from spatten_dv.models.params import (
    DEFAULT_PARAMS,
    LSB_WIDTHS,
    OUT_BITS,
    PLANE_WIDTHS,
    QKV_BITS,
    CoreParams,
)


class Status(IntEnum):
    OK = 0
    HEAD_SKIPPED = 1  # head pruned by cascade head pruning: nothing fetched, output zero
    NO_TOKENS = 2  # n_tokens == 0, or no token of 0..n_tokens-1 is kept
    TOO_MANY_TOKENS = 3  # n_tokens > L_MAX
    BAD_WIDTH = 4  # msb/lsb/v width not supported, or msb + lsb > 12
    BAD_ADDR = 5  # a base not bus-aligned, or a plane running past the address space
    BAD_HEAD = 6  # n_heads == 0 or > H_MAX, or head_id >= n_heads
    AXI_SLVERR = 7
    AXI_DECERR = 8


IMP_SHIFT_BITS = 5  # imp_shift: right shift 0..31 of every token importance


def descriptor_fields(params: CoreParams = DEFAULT_PARAMS) -> list[tuple[str, int]]:
    """(name, width) of each descriptor field, LSB first."""
    tb = params.token_bits
    return [
        ("job_id", 16),
        ("head_id", params.head_bits),
        ("n_heads", params.head_bits + 1),
        ("n_tokens", tb),
        ("msb_bits", 4),
        ("lsb_bits", 4),
        ("v_bits", 4),
        ("score_mult", 16),
        ("score_shift", 6),
        ("requant_thresh", 16),
        ("v_topk", tb),
        ("token_keep", tb),
        ("head_keep", params.head_bits + 1),
        ("clear_tokens", 1),
        ("clear_heads", 1),
        ("acc_tokens", 1),
        ("acc_heads", 1),
        ("k_msb_base", params.axi_addr_bits),
        ("k_lsb_base", params.axi_addr_bits),
        ("v_base", params.axi_addr_bits),
        ("query", params.head_dim * QKV_BITS),
        # per-step re-selection (docs/architecture.md section 7, steps 3, 4 and 6); after the
        # query so that the fields before keep their positions
        ("reselect", 1),
        ("imp_shift", IMP_SHIFT_BITS),
        ("protect_sink", tb),
        ("protect_recent", tb),
    ]


# Per-stage cycle counters of the result (docs/architecture.md section 9), cycle figures like
# `cycles` (RTL only, not modelled). The exclusive ones partition `cycles`; the overlapping
# ones are sub-counts (fetch_busy spans qk / v / fetch_wait cycles, fetch_stall is part of
# fetch_wait).
STAGE_COUNTERS = ("cyc_fetch_wait", "cyc_qk", "cyc_softmax", "cyc_topk", "cyc_v", "cyc_ctrl")
OVERLAP_COUNTERS = ("cyc_fetch_busy", "cyc_fetch_stall")


def result_fields(params: CoreParams = DEFAULT_PARAMS) -> list[tuple[str, int]]:
    """(name, width) of each result field, LSB first."""
    tb = params.token_bits
    return [
        ("job_id", 16),
        ("status", 4),
        ("lsb_fetched", 1),
        ("max_prob_msb", 16),
        ("max_prob", 16),
        ("n_keys", tb),
        ("n_values", tb),
        ("beats", 24),
        ("cycles", 32),
        ("out", params.head_dim * OUT_BITS),
    ] + [(name, 32) for name in STAGE_COUNTERS + OVERLAP_COUNTERS]


def pack_fields(values: dict[str, int], layout: list[tuple[str, int]]) -> int:
    word, pos = 0, 0
    for name, width in layout:
        v = int(values[name])
        if not 0 <= v < (1 << width):
            raise ValueError(f"field {name}={v} does not fit in {width} bits")
        word |= v << pos
        pos += width
    return word


def unpack_fields(word: int, layout: list[tuple[str, int]]) -> dict[str, int]:
    out, pos = {}, 0
    for name, width in layout:
        out[name] = (word >> pos) & ((1 << width) - 1)
        pos += width
    return out


@dataclass
class Job:
    """One attention job. Field meanings: docs/architecture.md, section 2.1."""

    query: torch.Tensor  # (D,) 12-bit signed integers
    n_tokens: int
    k_msb_base: int
    k_lsb_base: int = 0
    v_base: int = 0
    msb_bits: int = 12
    lsb_bits: int = 0
    v_bits: int = 12
    score_mult: int = 1
    score_shift: int = 0
    requant_thresh: int = 0  # Q1.15: refetch LSBs when max prob < this
    v_topk: int = 0  # 0: fetch V of every kept token
    token_keep: int = 0  # 0: no token pruning in this job
    head_keep: int = 0  # 0: no head pruning in this job
    clear_tokens: bool = False
    clear_heads: bool = False
    acc_tokens: bool = False
    acc_heads: bool = False
    reselect: bool = False  # every token < n_tokens kept again, importance kept
    imp_shift: int = 0  # token importance >>= imp_shift (every token) before the prunes
    protect_sink: int = 0  # a token prune keeps tokens < protect_sink first
    protect_recent: int = 0  # ... and tokens >= n_tokens - protect_recent
    head_id: int = 0
    n_heads: int = 1
    job_id: int = 0
    params: CoreParams = field(default=DEFAULT_PARAMS, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.query = check_int12("query", self.query).reshape(-1)
        if self.query.numel() != self.params.head_dim:
            raise ValueError(f"query: expected {self.params.head_dim} elements, got "
                             f"{self.query.numel()}")
        for name, width in descriptor_fields(self.params):
            if name == "query":
                continue
            v = getattr(self, name)
            if isinstance(v, bool):
                v = int(v)
            if not isinstance(v, int):
                raise TypeError(f"{name}: expected an integer, got {type(v).__name__}")
            if not 0 <= v < (1 << width):
                raise ValueError(f"{name}={v} does not fit the {width}-bit descriptor field")

    def field_values(self) -> dict[str, int]:
        from spatten_dv.models.formats import pack_query

        values = {f.name: int(getattr(self, f.name)) for f in fields(self)
                  if f.name not in ("query", "params")}
        values["query"] = pack_query(self.query, self.params)
        return values

    def pack(self) -> int:
        """The descriptor as one integer, laid out by descriptor_fields()."""
        return pack_fields(self.field_values(), descriptor_fields(self.params))

    @property
    def changes_pruning_state(self) -> bool:
        """Clears, reselect, rescale or a prune before the attention: the core holds such a
        job after CHECK until its back stage is empty (docs/architecture.md section 11)."""
        return bool(self.clear_tokens or self.clear_heads or self.reselect or self.imp_shift
                    or self.head_keep or self.token_keep)

    def validate(self) -> Status:
        """Status.OK or the first descriptor error, in the order the core checks them."""
        p = self.params
        if not 1 <= self.n_heads <= p.max_heads or self.head_id >= self.n_heads:
            return Status.BAD_HEAD
        if self.n_tokens == 0:
            return Status.NO_TOKENS
        if self.n_tokens > p.max_tokens:
            return Status.TOO_MANY_TOKENS
        if (self.msb_bits not in PLANE_WIDTHS or self.v_bits not in PLANE_WIDTHS
                or self.lsb_bits not in LSB_WIDTHS or self.msb_bits + self.lsb_bits > QKV_BITS):
            return Status.BAD_WIDTH
        from spatten_dv.models.layout import plane_bytes

        limit = 1 << p.axi_addr_bits
        planes = [(self.k_msb_base, self.msb_bits), (self.v_base, self.v_bits)]
        if self.lsb_bits:
            planes.append((self.k_lsb_base, self.lsb_bits))
        for base, width in planes:
            if base % p.bus_bytes or base + plane_bytes(self.n_tokens, width, p) > limit:
                return Status.BAD_ADDR
        return Status.OK


@dataclass
class JobResult:
    """What the core returns for a job, plus the reference's view of the internals."""

    job_id: int
    status: Status
    out: torch.Tensor  # (D,) int64, 16-bit signed: V units x 16
    lsb_fetched: bool = False
    max_prob_msb: int = 0
    max_prob: int = 0
    keys: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))
    values: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))
    probs: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))
    beats: int = 0
    bytes_k_msb: int = 0
    bytes_k_lsb: int = 0
    bytes_v: int = 0

    @property
    def n_keys(self) -> int:
        return int(self.keys.numel())

    @property
    def n_values(self) -> int:
        return int(self.values.numel())

    @property
    def bytes_read(self) -> int:
        return self.bytes_k_msb + self.bytes_k_lsb + self.bytes_v
