"""Validation against the Ramulator 2.1 reference figures kept in `reference/` (data only)."""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .config import SystemConfig
from .memory_system import run_trace
from .ramulator_config import load as load_ramulator_config
from .stats import RunStats
from .trace import Trace, read_trace

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"

# The bounds.
CYCLE_TOLERANCE_PCT = 1.0
ROW_STAT_TOLERANCE_PCT = 2.0
LATENCY_TOLERANCE_PCT = 2.0


@dataclass(frozen=True)
class ReferenceRow:
    trace: str
    standard: str
    org_preset: str
    timing_preset: str
    refresh: str
    row_policy: str
    arrival: str  # our name: one_per_cycle | all_at_0
    requests: int
    reads: int
    writes: int
    cycles: int
    row_hits: int
    row_misses: int
    row_conflicts: int
    avg_read_latency: float
    cycles_last_accept: int
    trace_file: str
    config_file: str
    per_request_key: str  # "" when the reference has no per-request data for the row

    @property
    def label(self) -> str:
        return (f"{self.trace}/{self.standard}/{self.refresh}/{self.row_policy}/"
                f"{self.arrival}")

    def config(self) -> SystemConfig:
        """The configuration from our own presets."""
        return SystemConfig.from_presets(self.standard, self.timing_preset, org=self.org_preset,
                                         refresh=self.refresh, row_policy=self.row_policy)

    def ramulator_config(self) -> SystemConfig:
        """The configuration from the exported Ramulator YAML of this row."""
        return load_ramulator_config(REFERENCE_DIR / self.config_file)


@lru_cache(maxsize=1)
def load_rows() -> tuple[ReferenceRow, ...]:
    rows = []
    with open(REFERENCE_DIR / "reference.csv", newline="") as f:
        for r in csv.DictReader(f):
            org, timing = r["preset"].split("/")
            per_request = r["per_request_file"]
            if per_request:
                per_request = Path(per_request).name.removesuffix(".csv.gz")
            rows.append(ReferenceRow(
                trace=r["trace"], standard=r["standard"], org_preset=org, timing_preset=timing,
                refresh=r["refresh"], row_policy=r["row_policy"],
                arrival="one_per_cycle" if r["arrival"] == "one_per_cycle" else "all_at_0",
                requests=int(r["requests"]), reads=int(r["reads"]), writes=int(r["writes"]),
                cycles=int(r["cycles"]), row_hits=int(r["row_hits"]),
                row_misses=int(r["row_misses"]), row_conflicts=int(r["row_conflicts"]),
                avg_read_latency=float(r["avg_read_latency_cycles"]),
                cycles_last_accept=int(r["cycles_last_accept"]), trace_file=r["trace_file"],
                config_file=r["config_file"], per_request_key=per_request))
    return tuple(rows)


def trace_names() -> list[str]:
    seen: dict[str, None] = {}
    for row in load_rows():
        seen.setdefault(row.trace)
    return list(seen)


@lru_cache(maxsize=32)
def load_trace(relative_path: str) -> Trace:
    return read_trace(REFERENCE_DIR / relative_path)


def trace_path(name: str, tx_bytes: int) -> Path:
    return REFERENCE_DIR / "traces" / f"{name}_{tx_bytes}B.trace.gz"


def per_request(row: ReferenceRow) -> tuple[np.ndarray, np.ndarray] | None:
    """Reference (arrive, depart) per trace line, or None when the row has none."""
    if not row.per_request_key:
        return None
    # Opened per call: an open archive must not be shared with forked worker processes,
    # whose reads would interleave on the one inherited file offset.
    with np.load(REFERENCE_DIR / "per_request.npz") as archive:
        arrive = np.cumsum(archive[row.per_request_key + ".arrive_delta"].astype(np.int64))
        return arrive, arrive + archive[row.per_request_key + ".latency"]


def _pct(ours: float, ref: float) -> float:
    if ref == 0:
        return 0.0 if ours == 0 else math.inf
    return abs(ours - ref) / abs(ref) * 100.0


@dataclass(frozen=True)
class RowComparison:
    row: ReferenceRow
    stats: RunStats
    seconds: float
    exact_depart_share: float | None  # share of requests whose depart cycle matches exactly
    exact_arrive_share: float | None
    first_mismatch: tuple[int, int, int] | None  # (trace line, ref depart, our depart)

    @property
    def cycle_error_pct(self) -> float:
        return _pct(self.stats.cycles, self.row.cycles)

    @property
    def row_stat_errors_pct(self) -> dict[str, float]:
        return {"hits": _pct(self.stats.row_hits, self.row.row_hits),
                "misses": _pct(self.stats.row_misses, self.row.row_misses),
                "conflicts": _pct(self.stats.row_conflicts, self.row.row_conflicts)}

    @property
    def latency_error_pct(self) -> float:
        return _pct(self.stats.avg_read_latency, self.row.avg_read_latency)

    @property
    def within_bounds(self) -> bool:
        return (self.cycle_error_pct <= CYCLE_TOLERANCE_PCT
                and max(self.row_stat_errors_pct.values()) <= ROW_STAT_TOLERANCE_PCT
                and self.latency_error_pct <= LATENCY_TOLERANCE_PCT)


def compare_row(row: ReferenceRow, use_ramulator_config: bool = False) -> RowComparison:
    config = row.ramulator_config() if use_ramulator_config else row.config()
    trace = load_trace(row.trace_file)
    start = time.perf_counter()
    result = run_trace(config, trace, row.arrival)
    seconds = time.perf_counter() - start
    exact_depart = exact_arrive = None
    mismatch = None
    reference = per_request(row)
    if reference is not None:
        ref_arrive, ref_depart = reference
        exact_arrive = float(np.mean(ref_arrive == result.arrive))
        same = ref_depart == result.depart
        exact_depart = float(np.mean(same))
        if not same.all():
            i = int(np.argmin(same))
            mismatch = (i, int(ref_depart[i]), int(result.depart[i]))
    return RowComparison(row, result.stats, seconds, exact_depart, exact_arrive, mismatch)


def _compare_index(args: tuple[int, bool]) -> RowComparison:
    index, use_ramulator_config = args
    return compare_row(load_rows()[index], use_ramulator_config)


def compare_rows(rows: Iterable[ReferenceRow], workers: int = 1,
                 use_ramulator_config: bool = False,
                 on_result: Callable[[RowComparison], None] | None = None
                 ) -> list[RowComparison]:
    """Compare several rows, in parallel processes when workers > 1 (results in input order)."""
    all_rows = load_rows()
    indices = [all_rows.index(r) for r in rows]
    jobs = [(i, use_ramulator_config) for i in indices]
    results: list[RowComparison] = []
    if workers <= 1:
        for job in jobs:
            results.append(_compare_index(job))
            if on_result:
                on_result(results[-1])
        return results
    from concurrent.futures import ProcessPoolExecutor

    # Longest rows first, so the pool does not end on one long straggler.
    order = sorted(range(len(jobs)), key=lambda k: -all_rows[indices[k]].requests)
    by_position: dict[int, RowComparison] = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for k, result in zip(order, pool.map(_compare_index, [jobs[k] for k in order]),
                             strict=True):
            by_position[k] = result
            if on_result:
                on_result(result)
    return [by_position[k] for k in range(len(jobs))]


def summary(results: list[RowComparison]) -> dict:
    def share(pred) -> list[float]:
        return [r.exact_depart_share for r in results
                if r.exact_depart_share is not None and pred(r.row)]

    no_refresh = share(lambda row: row.refresh == "NoRefresh")
    refresh = share(lambda row: row.refresh != "NoRefresh")
    requests = sum(r.row.requests for r in results)
    seconds = sum(r.seconds for r in results)
    return {
        "rows": len(results),
        "rows_within_bounds": sum(r.within_bounds for r in results),
        "rows_exact": sum(r.cycle_error_pct == 0 and max(r.row_stat_errors_pct.values()) == 0
                          for r in results),
        "worst_cycle_error_pct": max((r.cycle_error_pct for r in results), default=0.0),
        "worst_row_stat_error_pct": max((max(r.row_stat_errors_pct.values()) for r in results),
                                        default=0.0),
        "worst_latency_error_pct": max((r.latency_error_pct for r in results), default=0.0),
        "exact_depart_share_no_refresh": min(no_refresh) if no_refresh else None,
        "exact_depart_share_refresh": min(refresh) if refresh else None,
        "requests": requests,
        "seconds": seconds,
        "requests_per_s": requests / seconds if seconds else 0.0,
    }


def format_table(results: list[RowComparison]) -> str:
    lines = ["| trace | standard | refresh | policy | arrival | cycles (ref) | cycles err % "
             "| hit/miss/conflict err % | latency err % | exact departs |",
             "| --- | --- | --- | --- | --- | ---: | ---: | --- | ---: | ---: |"]
    for r in results:
        e = r.row_stat_errors_pct
        exact = "-" if r.exact_depart_share is None else f"{100 * r.exact_depart_share:.2f} %"
        lines.append(
            f"| {r.row.trace} | {r.row.standard} | {r.row.refresh} | {r.row.row_policy} "
            f"| {r.row.arrival} | {r.row.cycles} | {r.cycle_error_pct:.3f} "
            f"| {e['hits']:.2f}/{e['misses']:.2f}/{e['conflicts']:.2f} "
            f"| {r.latency_error_pct:.3f} | {exact} |")
    return "\n".join(lines)
