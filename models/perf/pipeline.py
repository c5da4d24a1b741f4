"""Job overlap: when each job runs on the core's two job stages (docs/perf.md "Job overlap").

The pipelined core (hdl/spatten_core.v) runs a job in two stages:
  front (A): CHECK, clears, prunes, HEADCHK, key-list scan, K passes, VSEL, value top-k
  back (B):  V pass, token accumulation (ACC_T), ACC_H, NEXT, RESULT
A hands job i to B when A is done and B is free (B's previous result taken), in one edge, and
takes the next descriptor right after; so job i+1's front stage runs while job i is in the back
stage. A job that changes the pruning state (`JobShape.hazard`) waits after CHECK until B holds
no job. Two things are shared between the stages:
  * the DRAM channel(s) and R bus: the V fetch of job i and the K fetch of job i+1. A fetch's
    streaming part needs per cycle alone a share d of DRAM time and b of the R bus
    (models/perf/stages.py Phase). While both stream and (d_K + d_V)(1 + c) or b_K + b_V
    exceeds 1, the binding resource is split: V up to `v_share`, K the rest, either leaving
    what it does not need to the other (c, `contention`: the extra DRAM time of two interleaved
    streams, row conflicts between their banks): a fluid bandwidth-sharing model.
  * the prune state: a front-stage scan wins over the back stage's token accumulation, which
    stalls while the scan runs.

The recurrence, per job i (cycle numbers as the environment records them, jobs.jsonl):
  A(i) starts at accept(i) + 1 (CHECK); a hazard job continues after CHECK at
      result(i-1) + hazard
  handoff(i) = max(A(i) done, result(i-1) + b_free)
  B(i) starts at handoff(i) + handoff; accept(i+1) = handoff(i) + accept
  result(i) = B(i) done (its NEXT cycle + 1: RESULT, taken at once)
  latency(i) = result(i) - accept(i) - 1   (the result's `cycles` field, CHECK .. NEXT)
A and B are run together by `co_run`, one job pair (A(i), B(i-1)) at a time: a front stage only
ever overlaps the back stage of the job before it. Sequential (no overlap): accept(i+1) =
result(i) + 1 and every phase runs alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spatten_dv.models.perf.configs import TIMING, PipelineTiming
from spatten_dv.models.perf.stages import STAGES, Phase

EPS = 1e-9


@dataclass
class JobTiming:
    accept: float
    a_done: float = 0.0
    handoff: float = 0.0
    result: float = 0.0
    stages: dict = field(default_factory=lambda: dict.fromkeys(STAGES + ("wait",), 0.0))

    @property
    def latency(self) -> float:
        return self.result - self.accept - 1


class _Lane:
    """One stage working through its phases from `start`; `stages` collects elapsed cycles."""

    def __init__(self, phases: list[Phase], start: float, stages: dict | None):
        self.phases = [p for p in phases if p.cycles > EPS]
        self.start = start
        self.i = 0
        self.left = self.phases[0].cycles if self.phases else 0.0
        self.stages = stages
        self.done_at = start if not self.phases else None
        self.resume = None  # a hazard job: continues at this time (None: not yet known)

    @property
    def phase(self) -> Phase | None:
        return self.phases[self.i] if self.i < len(self.phases) else None

    def advance(self, dt: float, rate: float, t_end: float) -> None:
        p = self.phase
        if self.stages is not None:
            self.stages[p.stage] += dt
        self.left -= rate * dt
        if self.left <= EPS:
            self.i += 1
            if self.i < len(self.phases):
                self.left = self.phases[self.i].cycles
            else:
                self.done_at = t_end


def _fetch_rates(a: Phase, b: Phase, timing: PipelineTiming) -> tuple[float, float]:
    """Rates (of their rates alone) of a front fetch `a` and a back fetch `b` streaming
    together. The binding resource (DRAM time, c extra when interleaved, or R beats) is split:
    the back (V) fetch gets up to `v_share` of it, the front (K) fetch the rest, and a fetch
    that needs less than its share leaves the remainder to the other."""
    c = timing.contention
    loads = ((a.dram + b.dram) * (1 + c), a.beat + b.beat)
    if max(loads) <= 1.0:
        return 1.0, 1.0
    ua, ub = ((a.dram * (1 + c), b.dram * (1 + c)) if loads[0] >= loads[1]
              else (a.beat, b.beat))
    rb = min(1.0, timing.v_share / ub) if ub > 0 else 1.0
    ra = min(1.0, (1.0 - rb * ub) / ua) if ua > 0 else 1.0
    if ub > 0:
        rb = min(1.0, (1.0 - ra * ua) / ub)
    return ra, rb


def co_run(front: list[Phase], a_start: float, back: list[Phase], b_start: float,
           hazard: bool = False, timing: PipelineTiming = TIMING,
           front_stages: dict | None = None,
           back_stages: dict | None = None) -> tuple[float, float]:
    """Run a job's front phases (from a_start) with the previous job's back phases (from
    b_start). A hazard job waits after its first phase (CHECK) until the back stage is done
    + timing.hazard (the wait is added to front_stages["wait"]). Returns (front done, back
    done)."""
    a = _Lane(front, a_start, front_stages)
    b = _Lane(back, b_start, back_stages)
    t = min(a_start, b_start)
    if hazard and b.done_at is not None:
        a.resume = b.done_at + timing.hazard
    while a.done_at is None or b.done_at is None:
        waiting = hazard and a.i == 1 and (a.resume is None or t < a.resume - EPS)
        a_on = a.done_at is None and t >= a.start - EPS and not waiting
        b_on = b.done_at is None and t >= b.start - EPS
        ra = rb = 1.0
        if a_on and b_on:
            pa, pb = a.phase, b.phase
            if pa.unit == "fetch" and pb.unit == "fetch":
                ra, rb = _fetch_rates(pa, pb, timing)
            elif pa.unit == "state" and pb.unit == "state":
                rb = 0.0  # the scan wins; the accumulation stalls
        events = []
        if a_on:
            if ra > 0:
                events.append(a.left / ra)
        elif a.done_at is None:
            if t < a.start - EPS:
                events.append(a.start - t)
            elif a.resume is not None:
                events.append(a.resume - t)
        if b_on:
            if rb > 0:
                events.append(b.left / rb)
        elif b.done_at is None:
            events.append(b.start - t)
        if not events:
            raise RuntimeError("pipeline model: no stage can progress")  # a bug, not input
        dt = max(min(events), 0.0)
        t_end = t + dt
        if a_on:
            a.advance(dt, ra, t_end)
        elif waiting and a.done_at is None and t >= a.start - EPS and front_stages is not None:
            front_stages["wait"] += dt
        if b_on:
            b.advance(dt, rb, t_end)
            if b.done_at is not None and hazard:
                a.resume = b.done_at + timing.hazard
        t = t_end
    return a.done_at, b.done_at


def split(phases: list[Phase]) -> tuple[list[Phase], list[Phase]]:
    return [p for p in phases if not p.back], [p for p in phases if p.back]


def schedule(jobs: list[tuple[list[Phase], bool]], overlap: bool = True,
             timing: PipelineTiming = TIMING, first_accept: float = 1.0) -> list[JobTiming]:
    """Accept, handoff and result cycles and per-stage elapsed cycles of each job, from its
    phases (models/perf/stages.py job_phases) and hazard flag, in order."""
    out: list[JobTiming] = []
    acc = first_accept
    prev_back: list[Phase] = []
    prev_b_start = acc
    prev: JobTiming | None = None
    for phases, hazard in jobs:
        jt = JobTiming(acc)
        front, back = split(phases)
        if not overlap:
            a_done, _ = co_run(front, acc + 1, [], acc + 1, front_stages=jt.stages)
            _, jt.result = co_run([], a_done, back, a_done, back_stages=jt.stages)
            jt.a_done = jt.handoff = a_done
            acc = jt.result + 1
            out.append(jt)
            continue
        jt.a_done, b_done = co_run(front, acc + 1, prev_back, prev_b_start,
                                   hazard and prev is not None, timing, jt.stages,
                                   prev.stages if prev is not None else None)
        free = -float("inf")
        if prev is not None:
            prev.result = b_done
            free = b_done + timing.b_free
        jt.handoff = max(jt.a_done, free)
        jt.stages["wait"] += jt.handoff - jt.a_done + timing.handoff
        prev_back, prev_b_start, prev = back, jt.handoff + timing.handoff, jt
        acc = jt.handoff + timing.accept
        out.append(jt)
    if overlap and prev is not None:
        _, prev.result = co_run([], prev_b_start, prev_back, prev_b_start,
                                back_stages=prev.stages)
    return out
