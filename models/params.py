"""Build-time parameters of the SpAtten core and the constants of its number formats.

These mirror the Verilog parameters in hdl/ one for one (docs/architecture.md, section 1).
"""

from __future__ import annotations

from dataclasses import dataclass

# Number formats (docs/architecture.md, section 4). Fixed by the architecture, not parameters.
QKV_BITS = 12  # Q, K and V elements: 12-bit two's complement integers
PLANE_WIDTHS = (4, 6, 8, 12)  # supported MSB-plane and V-plane widths
LSB_WIDTHS = (0, 4, 6, 8)  # supported LSB-plane widths (0 = no LSB plane)
DOT_BITS = 30  # Q.K accumulator: 64 products of 12x12 bits need 24 + 6 bits
EXP_FRAC_BITS = 8  # fractional bits of the base-2 exponent fed to the exp LUT
EXP_LUT_BITS = 16  # LUT entries are unsigned Q1.15 (2^0 = 32768)
EXP_ZERO_SHIFT = 16  # an integer exponent part >= 16 makes the term 0
PROB_FRAC_BITS = 15  # probabilities are unsigned Q1.15, 0..32768
RECIP_BITS = 40  # reciprocal of the softmax sum: floor(2^40 / S)
RECIP_SHIFT = 25  # p = (u * R + 2^24) >> 25
SCORE_MULT_BITS = 16
SCORE_SHIFT_BITS = 6
OUT_BITS = 16  # output elements: 16-bit two's complement, V units with 4 fractional bits
OUT_FRAC_BITS = 4
OUT_SHIFT = PROB_FRAC_BITS - OUT_FRAC_BITS  # 11: acc (Q1.15 x V) -> V x 2^4
IMP_BITS = 32  # token and head importance accumulators, saturating


@dataclass(frozen=True)
class CoreParams:
    """Synthesis-time parameters; defaults are the configuration the tests build."""

    head_dim: int = 64  # D
    max_tokens: int = 1024  # L_MAX
    max_heads: int = 32  # H_MAX
    qk_multipliers: int = 64  # Q.K multipliers: one key per cycle at D=64
    pv_multipliers: int = 64  # prob.V multipliers: one value vector per cycle at D=64
    topk_comparators: int = 16
    axi_data_bits: int = 256
    axi_addr_bits: int = 32
    axi_read_channels: int = 1
    max_burst_beats: int = 16
    softmax_lanes: int = 8  # scores / probabilities per cycle in the softmax's passes

    def __post_init__(self) -> None:
        if self.head_dim <= 0 or self.head_dim % 8:
            raise ValueError(f"head_dim must be a positive multiple of 8, got {self.head_dim}")
        if self.max_tokens < 1 or self.max_tokens & (self.max_tokens - 1):
            raise ValueError(f"max_tokens must be a power of two, got {self.max_tokens}")
        if self.axi_data_bits not in (64, 128, 256, 512):
            raise ValueError(f"axi_data_bits must be 64/128/256/512, got {self.axi_data_bits}")

    @property
    def bus_bytes(self) -> int:
        return self.axi_data_bits // 8

    @property
    def token_bits(self) -> int:
        """Width of a token count field: 0..max_tokens inclusive."""
        return self.max_tokens.bit_length()

    @property
    def head_bits(self) -> int:
        return max(1, (self.max_heads - 1).bit_length())

    def token_bytes(self, width: int) -> int:
        """Bytes of one token in a plane of `width`-bit elements: D*width/8, packed densely.

        Token t of a plane starts at byte t * token_bytes(width) (docs/architecture.md section
        3): no per-token padding, so a 6-bit token (48 B at D = 64) may start mid bus word.
        """
        if width == 0:
            return 0
        bits = self.head_dim * width
        if bits % 8:
            raise ValueError(f"D*width = {bits} bits is not a whole number of bytes")
        return bits // 8


DEFAULT_PARAMS = CoreParams()

# Named configurations of the core that the regression builds and checks bit-exactly
# (docs/architecture.md section 1). `default` is the configuration every test builds unless it
# names another; `small` shrinks every dimension (half the head size and bus, a quarter of the
# tokens, half the heads, D/QK_MULS = 2 cycles per key, half the top-k comparators, 8-beat
# bursts, one softmax lane): it checks that the top level follows its parameters, and it
# simulates faster.
CONFIGURATIONS: dict[str, CoreParams] = {
    "default": DEFAULT_PARAMS,
    "small": CoreParams(head_dim=32, max_tokens=256, max_heads=16, qk_multipliers=16,
                        pv_multipliers=32, topk_comparators=8, axi_data_bits=128,
                        max_burst_beats=8, softmax_lanes=1),
    # SpAtten's published design point (HPCA 2021 section 5): 8 keys per cycle through Q.K
    # (512 multipliers), 8 softmax lanes, 8 values per cycle through prob.V (512 multipliers),
    # 16 top-k comparators; behind 8 HBM2 channels (CONFIGURATION_KNOBS)
    "paper": CoreParams(qk_multipliers=512, pv_multipliers=512, topk_comparators=16,
                        softmax_lanes=8, axi_read_channels=8),
}

# Environment knobs a configuration brings unless the test or the run sets them: the memory
# system it was designed for (`paper`: HBM2, one AXI read channel per HBM2 channel).
CONFIGURATION_KNOBS: dict[str, dict] = {
    "paper": {"dram": "HBM2_2000Mbps", "channels": 8},
}


def with_configuration_knobs(knobs: dict) -> dict:
    """`knobs` completed with the defaults of the configuration they name (knob `config`)."""
    return dict(CONFIGURATION_KNOBS.get(str(knobs.get("config", "default")), {}), **knobs)

# CoreParams field -> spatten_core Verilog parameter (N_CH comes from the run's channels knob)
VERILOG_PARAMETERS = {
    "head_dim": "D", "max_tokens": "L_MAX", "max_heads": "H_MAX", "qk_multipliers": "QK_MULS",
    "pv_multipliers": "PV_MULS", "topk_comparators": "TOPK_CMPS", "axi_data_bits": "AXI_DW",
    "axi_addr_bits": "AW", "max_burst_beats": "MAX_BURST", "softmax_lanes": "SM_LANES",
}


def verilog_parameters(params: CoreParams, only_changed: bool = True) -> dict[str, int]:
    """spatten_core's Verilog parameters for `params`; by default only those that differ from
    the defaults (so a default build keeps the build folder of a parameterless one)."""
    return {verilog: getattr(params, name) for name, verilog in VERILOG_PARAMETERS.items()
            if not only_changed or getattr(params, name) != getattr(DEFAULT_PARAMS, name)}


def configuration(name: str) -> CoreParams:
    """The named configuration; ValueError naming the choices otherwise."""
    try:
        return CONFIGURATIONS[name]
    except KeyError:
        raise ValueError(f"unknown configuration {name!r}: choose from "
                         f"{', '.join(CONFIGURATIONS)}") from None
