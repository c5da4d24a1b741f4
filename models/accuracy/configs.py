"""Study configurations: SpAtten budgets and schedules, H2O, StreamingLLM (the method: the
package docstring, docs/accuracy.md)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from spatten_dv.errors import UserError
from spatten_dv.models.params import LSB_WIDTHS, PLANE_WIDTHS, QKV_BITS

METHODS = ("dense", "spatten", "h2o", "streaming")
MIN_KEEP = 16  # token budgets never go below 16 tokens (keep_count)
FULL_BITS = QKV_BITS  # what unquantized K/V count as (12-bit planes)


@dataclass(frozen=True)
class StudyConfig:
    """One evaluated configuration. Fractions are of the dense (causal) count."""

    name: str
    method: str  # dense | spatten | h2o | streaming
    keys: float = 1.0  # spatten: mean token keep ratio over layers; h2o/streaming: per query
    values: float = 1.0  # spatten: fraction of the kept keys whose V is fetched
    heads: float = 1.0  # spatten: head keep ratio after the ramp
    dense_layers: float = 1 / 30  # spatten: fraction of layers (>= 1 layer) kept dense
    ramp_layers: float = 4 / 30  # spatten: fraction of layers (>= 1) of the linear ramp
    msb_bits: int | None = None  # None: float Q/K/V (no quantization)
    lsb_bits: int = 0
    v_bits: int | None = None
    requant_thresh: float = 0.0
    recent: float = 0.0  # spatten: the newest floor(recent * keep) tokens are never pruned
    sinks: int = 4  # streaming
    note: str = ""

    def validate(self) -> None:
        if self.method not in METHODS:
            raise UserError(f"{self.name}: method must be one of {METHODS}")
        for fname in ("keys", "values", "heads"):
            v = getattr(self, fname)
            if not 0 < v <= 1:
                raise UserError(f"{self.name}: {fname} must be in (0, 1], got {v}")
        if self.method != "spatten" and (self.values != 1 or self.heads != 1 or self.quantized):
            raise UserError(f"{self.name}: values/heads/quantization are SpAtten options")
        if self.quantized:
            if self.msb_bits not in PLANE_WIDTHS or self.v_bits not in PLANE_WIDTHS:
                raise UserError(f"{self.name}: msb_bits and v_bits must be in {PLANE_WIDTHS}")
            if self.lsb_bits not in LSB_WIDTHS or self.msb_bits + self.lsb_bits > QKV_BITS:
                raise UserError(f"{self.name}: lsb_bits must be in {LSB_WIDTHS} with "
                                f"msb_bits + lsb_bits <= {QKV_BITS}")
        elif self.v_bits is not None or self.lsb_bits:
            raise UserError(f"{self.name}: v_bits/lsb_bits need msb_bits")
        if self.requant_thresh < 0 or self.requant_thresh > 1:
            raise UserError(f"{self.name}: requant_thresh must be in [0, 1]")
        if not 0 <= self.recent < 1 or (self.recent and self.method != "spatten"):
            raise UserError(f"{self.name}: recent must be in [0, 1) (SpAtten only)")
        if self.sinks < 0:
            raise UserError(f"{self.name}: sinks must be >= 0")

    @property
    def quantized(self) -> bool:
        return self.msb_bits is not None

    @property
    def k_bits(self) -> int:
        return self.msb_bits if self.quantized else FULL_BITS

    @property
    def val_bits(self) -> int:
        return self.v_bits if self.quantized else FULL_BITS

    def describe(self) -> str:
        if self.method == "dense":
            return "dense attention, float K/V (counted as 12-bit)"
        if self.method == "h2o":
            return f"H2O: {self.keys:.0%} of tokens/query (heavy hitters + recent, half each)"
        if self.method == "streaming":
            return f"StreamingLLM: {self.sinks} sinks + recent, {self.keys:.0%} of tokens/query"
        bits = (f"K {self.msb_bits}+{self.lsb_bits} bits (thr {self.requant_thresh:g}), "
                f"V {self.v_bits} bits" if self.quantized else "float K/V")
        heads = f", heads to {self.heads:.0%}" if self.heads < 1 else ""
        recent = f" (newest {self.recent:.0%} kept)" if self.recent else ""
        return (f"SpAtten: tokens ramp to mean {self.keys:.0%}{recent}, V top "
                f"{self.values:.0%} of kept{heads}, {bits}")


def _ramp(n_layers: int, dense: float, ramp: float) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) with ratio_l = a_l + b_l * r_min: dense layers at 1, a linear ramp, then r_min."""
    d = max(1, round(dense * n_layers)) if dense > 0 else 0
    r = max(1, round(ramp * n_layers))
    a = np.ones(n_layers)
    b = np.zeros(n_layers)
    for layer in range(d, n_layers):
        j = min(layer - d + 1, r) / r  # 1/r .. 1 along the ramp, then 1
        a[layer], b[layer] = 1 - j, j
    return a, b


def layer_schedule(cfg: StudyConfig, n_layers: int, n_heads: int) -> tuple[list[float], list[int]]:
    """Per-layer token keep ratios and head keep counts of a SpAtten config.

    The head counts ramp down to ceil(heads * H); r_min is solved so that the mean over the
    layers of (token ratio x kept-head fraction) equals `keys`.
    """
    a, b = _ramp(n_layers, cfg.dense_layers, cfg.ramp_layers)
    head_ratio = a + b * cfg.heads
    head_keep = [min(n_heads, math.ceil(h * n_heads - 1e-9)) for h in head_ratio]
    hf = np.array(head_keep) / n_heads
    if cfg.keys >= 1:
        r_min = 1.0
    else:
        denom = float((hf * b).mean())
        r_min = (cfg.keys - float((hf * a).mean())) / denom if denom > 0 else -1.0
    if not 0 < r_min <= 1:
        raise UserError(f"{cfg.name}: a mean keep ratio of {cfg.keys} cannot be reached with "
                        f"this ramp over {n_layers} layers (r_min would be {r_min:.3f})")
    return [float(x) for x in a + b * r_min], head_keep


def keep_count(ratio: float, n: int) -> int:
    """Tokens kept for a query over n tokens: ceil(ratio * n), but never below MIN_KEEP.

    The floor only matters for the first queries of a chunk (ratio * n < MIN_KEEP, n < 80 at
    20 %); without it a 20 % budget keeps 1 token at n = 2..5 and H2O, whose evictions are
    final, would lose the first (attention sink) token at the second query.
    """
    return min(n, max(MIN_KEEP, math.ceil(ratio * n - 1e-9)))


def _cfg(name, method, **kw) -> StudyConfig:
    return StudyConfig(name=name, method=method, **kw)


# The study's configurations. "spatten-per8" is the point close to the GPT-2-small per8
# workload (28 % of keys, 5.5 % of values, 6-bit MSB + 4-bit LSB, threshold 0.05). SpAtten
# points keep the newest half of each query's token budget unpruned (`recent`, see the doc:
# without it the accumulated importance prunes every new token at once); "-norecent" is the
# plain spec schedule. DEFAULT_NAMES run by default; the others on request (--configs).
_SP = {"recent": 0.5, "lsb_bits": 4, "requant_thresh": 0.05}
ALL_CONFIGS: tuple[StudyConfig, ...] = (
    _cfg("dense", "dense"),
    _cfg("spatten-50", "spatten", keys=0.50, values=0.50, msb_bits=8, v_bits=8, **_SP),
    _cfg("spatten-per8", "spatten", keys=0.28, values=0.055 / 0.28, msb_bits=6, v_bits=12,
         note="close to the GPT-2-small per8 workload", **_SP),
    _cfg("spatten-20", "spatten", keys=0.20, values=0.20, heads=8 / 9, msb_bits=6, v_bits=8,
         **_SP),
    _cfg("h2o-28", "h2o", keys=0.28),
    _cfg("streaming-28", "streaming", keys=0.28),
    _cfg("h2o-20", "h2o", keys=0.20),
    _cfg("streaming-20", "streaming", keys=0.20),
    _cfg("h2o-10", "h2o", keys=0.10),
    _cfg("streaming-10", "streaming", keys=0.10),
    # on request
    _cfg("spatten-10", "spatten", keys=0.10, values=0.25, heads=7 / 9, ramp_layers=2 / 30,
         msb_bits=4, v_bits=8, **_SP),
    _cfg("spatten-per8-norecent", "spatten", keys=0.28, values=0.055 / 0.28, msb_bits=6,
         v_bits=12, lsb_bits=4, requant_thresh=0.05),
    _cfg("spatten-tokens-28", "spatten", keys=0.28, recent=0.5),
    _cfg("dense-12bit", "spatten", msb_bits=12, v_bits=12),
)
DEFAULT_NAMES = ("dense", "spatten-50", "spatten-per8", "spatten-20", "h2o-28", "streaming-28",
                 "h2o-20", "streaming-20", "h2o-10", "streaming-10")
CONFIGS_BY_NAME = {c.name: c for c in ALL_CONFIGS}


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
