"""Study configurations: SpAtten schedules (the per8 depth shape), H2O, StreamingLLM, dense.

A SpAtten token schedule is the GPT-2-small per8 workload's keep ratio by depth
(traces/workloads/summary-gpt2-small-wikitext2-per8.csv.gz: 921, 716, 204 x4, 102 x6 keys of
1024 in layers 0..11 of every decode step after the first), mapped onto the model's depth
(layer l of L takes per8 layer floor(12 l / L)) and scaled by `scale` (clipped at 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from spatten_dv.errors import UserError
from spatten_dv.models.params import LSB_WIDTHS, PLANE_WIDTHS, QKV_BITS

METHODS = ("dense", "spatten", "h2o", "streaming")
FULL_BITS = QKV_BITS  # what unquantized K/V count as (12-bit planes)
PER8 = "summary-gpt2-small-wikitext2-per8"
L_MAX = 1024  # per8's budgets are fractions of the core's L_MAX


@cache
def per8_shape() -> tuple[tuple[float, ...], float, int, int, int, float]:
    """(key ratio per GPT-2 layer, value/key ratio, K MSB bits, LSB bits, V bits, threshold)
    of the per8 workload's decode steps (step 1; steps 1..31 are the same)."""
    from spatten_dv.traces.workload import load_workload, resolve_workload

    wl = load_workload(resolve_workload(PER8))
    rows = [r for r in wl.rows if r.step == 1 and r.head == 0]
    rows.sort(key=lambda r: r.layer)
    ratios = tuple(r.keys / L_MAX for r in rows)
    vk = sum(r.values for r in rows) / sum(r.keys for r in rows)
    r0 = rows[0]
    return ratios, round(vk, 2), r0.key_bits, r0.requant_incre, r0.value_bits, r0.requant_thresh


def depth_ratios(scale: float, n_layers: int) -> list[float]:
    """Per-layer token keep ratios: the per8 shape mapped onto n_layers, times scale (<= 1)."""
    shape = per8_shape()[0]
    return [min(1.0, scale * shape[len(shape) * layer // n_layers]) for layer in range(n_layers)]


def keep_count(ratio: float, n: int) -> int:
    """Tokens kept out of n at a keep ratio: ceil(ratio n), at least 1, at most n."""
    return min(n, max(1, math.ceil(ratio * n - 1e-9)))


@dataclass(frozen=True)
class StudyConfig:
    """One evaluated configuration (docs/accuracy.md, section 2)."""

    name: str
    method: str  # dense | spatten | h2o | streaming
    scale: float = 1.0  # spatten: the per8 depth shape times this (1 = per8)
    keys: float = 1.0  # h2o/streaming: tokens kept per layer and head, fraction of all
    values: float = 1.0  # spatten: fraction of the kept keys whose V is fetched (per head)
    heads: float = 1.0  # spatten: head keep ratio in the layers at the shape's lowest ratio
    msb_bits: int | None = None  # None: float Q/K/V (counted as 12-bit)
    lsb_bits: int = 0
    v_bits: int | None = None
    requant_thresh: float = 0.0
    reselect: bool = True  # spatten: re-select from all tokens at every step
    imp_shift: int = 0  # spatten: importance >>= imp_shift once per step (x 2**-imp_shift)
    protect_sink: int = 0  # spatten: the first protect_sink tokens are never pruned
    protect_recent: int = 0  # spatten: nor the newest protect_recent (the current token first)
    sinks: int = 4  # streaming
    match: str = ""  # h2o/streaming: the SpAtten config whose K/V bytes set `keys`
    note: str = ""

    def validate(self) -> None:
        if self.method not in METHODS:
            raise UserError(f"{self.name}: method must be one of {METHODS}")
        for fname in ("keys", "values", "heads"):
            v = getattr(self, fname)
            if not 0 < v <= 1:
                raise UserError(f"{self.name}: {fname} must be in (0, 1], got {v}")
        if self.scale <= 0:
            raise UserError(f"{self.name}: scale must be > 0")
        spatten_only = (self.values != 1 or self.heads != 1 or self.quantized
                        or self.protect_sink or self.protect_recent or self.imp_shift
                        or not self.reselect or self.scale != 1)
        if self.method != "spatten" and spatten_only:
            raise UserError(f"{self.name}: scale/values/heads/quantization/reselect/imp_shift/"
                            f"protect_* are SpAtten options")
        if self.quantized:
            if self.msb_bits not in PLANE_WIDTHS or self.v_bits not in PLANE_WIDTHS:
                raise UserError(f"{self.name}: msb_bits and v_bits must be in {PLANE_WIDTHS}")
            if self.lsb_bits not in LSB_WIDTHS or self.msb_bits + self.lsb_bits > QKV_BITS:
                raise UserError(f"{self.name}: lsb_bits must be in {LSB_WIDTHS} with "
                                f"msb_bits + lsb_bits <= {QKV_BITS}")
        elif self.v_bits is not None or self.lsb_bits:
            raise UserError(f"{self.name}: v_bits/lsb_bits need msb_bits")
        if not 0 <= self.requant_thresh <= 1:
            raise UserError(f"{self.name}: requant_thresh must be in [0, 1]")
        for fname in ("sinks", "protect_sink", "protect_recent", "imp_shift"):
            if getattr(self, fname) < 0:
                raise UserError(f"{self.name}: {fname} must be >= 0")

    @property
    def quantized(self) -> bool:
        return self.msb_bits is not None

    @property
    def k_bits(self) -> int:
        return self.msb_bits if self.quantized else FULL_BITS

    @property
    def val_bits(self) -> int:
        return self.v_bits if self.quantized else FULL_BITS

    def token_ratios(self, n_layers: int) -> list[float]:
        return depth_ratios(self.scale, n_layers)

    def head_counts(self, n_layers: int, n_heads: int) -> list[int]:
        """Heads kept per layer: all, but ceil(heads H) where the shape is at its lowest."""
        shape = per8_shape()[0]
        low = min(shape)
        pruned = math.ceil(self.heads * n_heads - 1e-9)
        return [pruned if shape[len(shape) * layer // n_layers] == low else n_heads
                for layer in range(n_layers)]

    def byte_fraction(self, n_layers: int, n_heads: int) -> float:
        """Expected K/V bytes vs dense 12-bit (LSB refetches not counted)."""
        if self.method != "spatten":
            return self.keys
        heads = self.head_counts(n_layers, n_heads)
        per = [r * h / n_heads * (self.k_bits + self.values * self.val_bits) / (2 * FULL_BITS)
               for r, h in zip(self.token_ratios(n_layers), heads, strict=True)]
        return sum(per) / n_layers

    def describe(self) -> str:
        if self.method == "dense":
            return "dense attention, float K/V (counted as 12-bit)"
        tail = f" (bytes of {self.match})" if self.match else ""
        if self.method == "h2o":
            return (f"H2O: {self.keys:.1%} of tokens per layer/head (heavy hitters + recent, "
                    f"half each){tail}")
        if self.method == "streaming":
            return f"StreamingLLM: {self.sinks} sinks + recent, {self.keys:.1%} of tokens{tail}"
        bits = (f"K {self.msb_bits}+{self.lsb_bits} bits (thr {self.requant_thresh:g}), "
                f"V {self.v_bits} bits" if self.quantized else "float K/V")
        parts = [f"SpAtten: per8 depth ratios x{self.scale:g}", f"V top {self.values:.0%}"]
        if self.heads < 1:
            parts.append(f"heads {self.heads:.0%} in deep layers")
        parts.append(bits)
        if not self.reselect:
            parts.append("no re-selection")
        if self.imp_shift:
            parts.append(f"imp_shift {self.imp_shift}")
        if self.protect_sink or self.protect_recent:
            parts.append(f"protect sink {self.protect_sink} recent {self.protect_recent}")
        return ", ".join(parts)


def _per8_quant() -> dict:
    _, _, msb, lsb, vb, thr = per8_shape()
    return {"msb_bits": msb, "lsb_bits": lsb, "v_bits": vb, "requant_thresh": thr}


def _spatten(name: str, scale: float = 1.0, note: str = "", **kw) -> StudyConfig:
    """A full SpAtten point: per8 V ratio and bit widths, protected sink and recent tokens."""
    base = {"values": per8_shape()[1], **_per8_quant(), "protect_sink": 4,
            "protect_recent": 16}
    base.update(kw)
    return StudyConfig(name=name, method="spatten", scale=scale, note=note, **base)


def _build() -> tuple[tuple[StudyConfig, ...], tuple[str, ...]]:
    per8 = _spatten("spatten-per8", note="the per8 workload's ratios, widths and V ratio")
    curve = [_spatten("spatten-x0.5", 0.5), per8, _spatten("spatten-x2", 2.0)]
    extra = [_spatten("spatten-x4", 4.0)]  # on request (--configs)
    plain = replace(per8, name="spatten-per8-spec", protect_sink=0, protect_recent=0,
                    note="no protected tokens (the spec's policy)")
    ablations = [
        StudyConfig("abl-tokens", "spatten", protect_sink=4, protect_recent=16,
                    note="per8 token pruning only (float K/V, every V)"),
        StudyConfig("abl-tokens+heads", "spatten", heads=7 / 9, protect_sink=4,
                    protect_recent=16, note="+ head pruning"),
        StudyConfig("abl-tokens+values", "spatten", values=per8_shape()[1], protect_sink=4,
                    protect_recent=16, note="+ local V pruning"),
        replace(per8, name="abl-noreselect", reselect=False,
                note="per8 without re-selection (pruned tokens never return)"),
        replace(per8, name="abl-shift1", imp_shift=1, note="per8 with importance >> 1 per step"),
        plain,
    ]
    matched = []
    for sp in curve + extra:
        matched.append(StudyConfig(f"h2o@{sp.name}", "h2o", match=sp.name))
        matched.append(StudyConfig(f"streaming@{sp.name}", "streaming", match=sp.name))
    everything = (StudyConfig("dense", "dense"), *curve, *ablations, *matched,
                  replace(per8, name="dense-quant", scale=1 / min(per8_shape()[0]), values=1.0,
                          protect_sink=0, protect_recent=0,
                          note="every token and V, per8 quantization only"))
    default = tuple(c.name for c in everything if "x4" not in c.name)
    return everything + tuple(extra), default


ALL_CONFIGS, DEFAULT_NAMES = _build()
CONFIGS_BY_NAME = {c.name: c for c in ALL_CONFIGS}


def resolve(configs: Sequence[StudyConfig], n_layers: int, n_heads: int) -> list[StudyConfig]:
    """Set the keys of matched H2O/StreamingLLM configs to their SpAtten config's bytes."""
    out = []
    for c in configs:
        if c.match:
            target = CONFIGS_BY_NAME.get(c.match)
            if target is None:
                raise UserError(f"{c.name}: no config {c.match!r} to match")
            c = replace(c, keys=min(1.0, target.byte_fraction(n_layers, n_heads)))
        c.validate()
        out.append(c)
    return out


def select_configs(names: Sequence[str] | None) -> list[StudyConfig]:
    if not names:
        return [CONFIGS_BY_NAME[n] for n in DEFAULT_NAMES]
    out = []
    for name in names:
        if name not in CONFIGS_BY_NAME:
            raise UserError(f"unknown config {name!r}; choose from {', '.join(CONFIGS_BY_NAME)}")
        if CONFIGS_BY_NAME[name] not in out:
            out.append(CONFIGS_BY_NAME[name])
    return out


def default_text() -> Path:
    return Path(__file__).resolve().parent.parent / "data" / "austen_persuasion_ch1-8.txt"
