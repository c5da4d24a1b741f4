"""Per-job predictions aggregated per decode step: cycles, DRAM bytes, bound ratio, GOP/s.

Ops (the GOP/s numerator): 2 D per key of the Q.K pass (a multiply and an add per element) plus
2 D per value of the prob.V pass. The LSB recompute is not counted (it redoes Q.K for accuracy,
it is no new work), nor the softmax, top-k and state operations.
bound ratio = cycles / (bytes / peak bytes per cycle): 1.0 means the job runs at the memory's
pin bandwidth; larger means it spends that factor more time than the bytes need.
GOP/s at 1 GHz = ops / cycles (one cycle = 1 ns).
A decode step's cycles are its span: from its first job's descriptor accepted to its last job's
result taken (models/perf/pipeline.py schedules the jobs on the core's two job stages; with
`overlap` off, one job at a time). For a GPT-2 workload one step is one generated token, so they
are also cycles per generated token. A job's cycles are its latency (the result's `cycles`
field: CHECK .. NEXT, waits included); with overlap the latencies of a step add up to more than
its span. The per-stage figures are per job elapsed cycles in each stage (contention and stalls
included, hazard and handoff waits in `wait`), summed over the step's jobs: they add up to the
sum of latencies, not to the span.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from spatten_dv.models.params import DEFAULT_PARAMS
from spatten_dv.models.perf.configs import PerfConfig
from spatten_dv.models.perf.dram import DramFit, calibrate
from spatten_dv.models.perf.pipeline import TIMING, schedule
from spatten_dv.models.perf.shape import JobShape
from spatten_dv.models.perf.stages import STAGES, job_phases

STEP_STAGES = STAGES + ("wait",)


@dataclass
class JobPrediction:
    shape: JobShape
    cycles: float  # latency (CHECK .. NEXT); alone (sequential) until `predict` schedules it
    stages: dict
    beats: int
    bytes: int
    transactions: int
    ops: int
    phases: list = field(default_factory=list, repr=False)
    accept: float = 0.0  # cycle the descriptor is accepted (`predict`)
    result: float = 0.0  # cycle the result is taken (`predict`)


@dataclass
class StepPrediction:
    step: int
    jobs: int = 0
    latency: float = 0.0  # sum of the jobs' latencies
    first_accept: float = float("inf")
    last_result: float = -float("inf")
    bytes: int = 0
    beats: int = 0
    ops: int = 0
    keys: int = 0
    values: int = 0
    stages: dict = field(default_factory=lambda: dict.fromkeys(STEP_STAGES, 0.0))

    @property
    def cycles(self) -> float:
        """The step's span: first descriptor accepted .. last result taken (inclusive)."""
        return self.last_result - self.first_accept + 1 if self.jobs else 0.0

    @property
    def overlap(self) -> float:
        """Sum of the jobs' latencies over the span (1: no overlap beyond the gaps)."""
        return self.latency / self.cycles if self.jobs else 0.0

    def add(self, p: JobPrediction) -> None:
        self.jobs += 1
        self.latency += p.cycles
        self.first_accept = min(self.first_accept, p.accept)
        self.last_result = max(self.last_result, p.result)
        self.bytes += p.bytes
        self.beats += p.beats
        self.ops += p.ops
        self.keys += p.shape.n_keys
        self.values += p.shape.n_values
        for k, v in p.stages.items():
            self.stages[k] += v

    def bound_ratio(self, peak_bytes_per_cycle: float) -> float:
        if not self.bytes or peak_bytes_per_cycle == float("inf"):
            return float("nan")
        return self.cycles / (self.bytes / peak_bytes_per_cycle)

    @property
    def gops_at_1ghz(self) -> float:
        return self.ops / self.cycles if self.cycles else 0.0


def fit_for(cfg: PerfConfig) -> DramFit:
    fit = calibrate(cfg.dram, cfg.channels, cfg.ideal_latency, cfg.r_beats_per_cycle,
                    cfg.max_outstanding)
    return fit if cfg.refresh_window else replace(fit, refresh_window=0.0)


def predict_job(shape: JobShape, cfg: PerfConfig, fit: DramFit) -> JobPrediction:
    """One job alone (sequential): cycles, stages, bytes; `predict` schedules it."""
    phases, fetch = job_phases(shape, cfg, fit)
    stages = dict.fromkeys(STEP_STAGES, 0.0)
    for ph in phases:
        stages[ph.stage] += ph.cycles
    beats = sum(f.beats for f in fetch.values())
    d = DEFAULT_PARAMS.head_dim
    ops = 2 * d * (shape.n_keys + shape.n_values) if shape.status == 0 else 0
    return JobPrediction(shape, sum(stages.values()), stages, beats,
                         beats * DEFAULT_PARAMS.bus_bytes,
                         sum(f.transactions for f in fetch.values()), ops, phases)


def predict(shapes: list[JobShape], cfg: PerfConfig) -> tuple[list[JobPrediction],
                                                              dict[int, StepPrediction]]:
    fit = fit_for(cfg)
    jobs = [predict_job(s, cfg, fit) for s in shapes]
    timings = schedule([(p.phases, p.shape.hazard) for p in jobs], cfg.overlap,
                       cfg.timing or TIMING)
    for p, t in zip(jobs, timings, strict=True):
        p.accept, p.result, p.cycles, p.stages = t.accept, t.result, t.latency, t.stages
    steps: dict[int, StepPrediction] = {}
    for p in jobs:
        steps.setdefault(p.shape.step, StepPrediction(p.shape.step)).add(p)
    return jobs, dict(sorted(steps.items()))
