"""Throughput of the model on the reference traces: requests/s and simulated cycles/s."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .config import SystemConfig
from .memory_system import run_trace
from .validation import load_trace, trace_names

# The figure: Ramulator 2 (C++) runs the 16,384-request random DDR4 trace in ~0.12 s.
RAMULATOR_RAND_DDR4_SECONDS = 0.12
RAMULATOR_RAND_DDR4_REQUESTS = 16384

BENCH_PRESETS = {"DDR4": "DDR4_2400R", "HBM2": "HBM2_2000Mbps"}
TX_BYTES = {"DDR4": 64, "HBM2": 32}


@dataclass(frozen=True)
class BenchResult:
    trace: str
    standard: str
    preset: str
    refresh: str
    requests: int
    cycles: int
    seconds: float

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def cycles_per_s(self) -> float:
        return self.cycles / self.seconds


def ramulator_requests_per_s() -> float:
    return RAMULATOR_RAND_DDR4_REQUESTS / RAMULATOR_RAND_DDR4_SECONDS


def bench_one(trace: str, standard: str = "DDR4", refresh: str = "AllBank",
              row_policy: str = "Open", repeat: int = 1) -> BenchResult:
    """Best of `repeat` runs (wall time of `run_trace`: address mapping included, file
    reading excluded)."""
    config = SystemConfig.from_presets(standard, BENCH_PRESETS[standard], refresh=refresh,
                                       row_policy=row_policy)
    requests = load_trace(f"traces/{trace}_{TX_BYTES[standard]}B.trace.gz")
    best = None
    cycles = 0
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        result = run_trace(config, requests)
        seconds = time.perf_counter() - start
        cycles = result.stats.cycles
        best = seconds if best is None else min(best, seconds)
    return BenchResult(trace, standard, BENCH_PRESETS[standard], refresh, len(requests),
                       cycles, best)


def bench(traces: list[str] | None = None, standards: tuple[str, ...] = ("DDR4", "HBM2"),
          refresh: str = "AllBank", repeat: int = 1, on_result=None) -> list[BenchResult]:
    results = []
    for standard in standards:
        for trace in traces or trace_names():
            results.append(bench_one(trace, standard, refresh, repeat=repeat))
            if on_result:
                on_result(results[-1])
    return results
