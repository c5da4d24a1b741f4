"""The arithmetic of `spatten-dv bench`: each headline figure from what the runs measured.

Kept apart from the runs so that it can be tested on made-up numbers.

DRAM peak: the environment's DramTarget runs the DRAM model's controller one cycle per core
clock cycle (verif/dram_target.py), whatever `clock_mhz` is, so the bytes the configured DRAM
can deliver per core cycle are the model's per controller cycle: one transaction of `tx_bytes`
per data burst of nBL cycles, per channel and pseudo-channel (DDR4-2400R: 64 B / 4 = 16 B per
cycle per channel; HBM2: 32 B / 2 = 16 B per pseudo-channel, two per channel: 32 B per channel,
the width of the core's AXI port: the same peak as models/perf/dram.py's).
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def dram_peak_bytes_per_cycle(dram: str, channels: int = 1, ideal_bus_bytes: int = 32) -> float:
    """Bytes per core cycle the configured DRAM can deliver at best (see the module doc).

    `ideal` (fixed latency, one transaction per cycle) is bounded by the AXI bus instead."""
    if dram == "ideal":
        return float(ideal_bus_bytes * channels)
    from spatten_dv.models.dram.config import SystemConfig
    from spatten_dv.models.dram.presets import TIMING_PRESETS

    preset = TIMING_PRESETS[dram]
    spec = SystemConfig.from_presets(preset.standard, dram, channels=channels).dram
    pseudo = spec.level_sizes[1] if "PseudoChannel" in spec.standard.levels else 1
    return spec.tx_bytes / spec.timings["nBL"] * channels * pseudo


def cycles_over_bound(cycles: int, nbytes: int, peak_bytes_per_cycle: float) -> float | None:
    """Cycles taken over the bandwidth-bound cycles (bytes / peak bytes per cycle)."""
    if nbytes <= 0 or peak_bytes_per_cycle <= 0:
        return None
    return cycles / (nbytes / peak_bytes_per_cycle)


def step_totals(records: Iterable[dict], beat_bytes: int = 32) -> dict[int, dict]:
    """Per decode step of a replay's jobs.jsonl records: jobs, bytes (beats x bus width), the
    sum of the jobs' own cycles, and the span from the first descriptor accepted to the last
    result taken (what a decode step takes, gaps between jobs included)."""
    steps: dict[int, dict] = {}
    for r in records:
        s = steps.setdefault(int(r.get("step", 0)), {"jobs": 0, "bytes": 0, "cycles": 0,
                                                      "first": None, "last": None})
        s["jobs"] += 1
        s["bytes"] += int(r["beats"]) * beat_bytes
        s["cycles"] += int(r["cycles"])
        a, b = int(r["accept_cycle"]), int(r["result_cycle"])
        s["first"] = a if s["first"] is None else min(s["first"], a)
        s["last"] = b if s["last"] is None else max(s["last"], b)
    for s in steps.values():
        s["span"] = s.pop("last") - s.pop("first") + 1
    return steps


def topk_formula_cycles(m: int, comparators: int = 16) -> int:
    """The top-k engine's budget for one partition pass over m candidates."""
    return math.ceil(m / comparators) + 3


def kv_bytes_reduction(dense_bytes: int, fetched_bytes: int) -> float | None:
    """Dense 12-bit K and V bytes of every token over the K/V bytes actually fetched."""
    return dense_bytes / fetched_bytes if fetched_bytes else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def worst(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return max(vals) if vals else None
