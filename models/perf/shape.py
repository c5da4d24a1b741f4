"""Job shapes: what the performance model needs to know of a job, nothing of its data.

A shape is taken from a job and the reference model's result (models/core.py run_job): the
state scans and prunes the descriptor asks for (with the number of candidates they see), the
kept keys and fetched values (token indices, for the fetcher's bursts), the LSB refetch, the
widths and plane bases. Sources: a GPT-2 workload (traces/workload.py build_jobs, the jobs
`spatten-dv sim --workload` runs) or a trace (verif/sequences/trace_replay.py trace_jobs, the
jobs `spatten-dv sim --trace` runs, placed by the environment's PlaneAllocator), so the shapes
are those of the RTL runs the model is compared with.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from spatten_dv.models.core import SpAttenCoreModel
from spatten_dv.models.descriptor import Job, Status
from spatten_dv.models.memory import DramImage
from spatten_dv.models.params import DEFAULT_PARAMS, CoreParams


@dataclass(frozen=True)
class Prune:
    candidates: int  # kept entries below n the scan finds
    keep: int  # top-k runs when keep < candidates


@dataclass(frozen=True)
class JobShape:
    step: int
    label: str
    status: int
    n_tokens: int
    clear: bool  # the CLR state runs: clear_tokens, clear_heads, reselect or imp_shift != 0
    head_prune: Prune | None
    token_prune: Prune | None
    keys: np.ndarray  # kept token indices (ascending): the K fetch
    values: np.ndarray  # token indices whose V is fetched (ascending)
    v_select: bool  # the V top-k runs (0 < v_topk < keys)
    lsb_fetched: bool
    msb_bits: int
    lsb_bits: int
    v_bits: int
    k_msb_base: int
    k_lsb_base: int
    v_base: int
    acc_tokens: bool
    # changes the pruning state (a clear, reselect, rescale or prune): in the pipelined core it
    # waits after CHECK until the back stage holds no job (models/perf/pipeline.py)
    hazard: bool = False
    rescale: bool = False  # the CLR state rescales the token importance (imp_shift != 0)

    @property
    def n_keys(self) -> int:
        return int(self.keys.size)

    @property
    def n_values(self) -> int:
        return int(self.values.size)


def shape_of(job: Job, model: SpAttenCoreModel, memory: DramImage, step: int = 0,
             label: str = "") -> JobShape:
    """Run `job` on the reference model (its state advances) and return the job's shape."""
    heads_before = job.n_heads if job.clear_heads else int(model.head_kept[:job.n_heads].sum())
    toks_before = (job.n_tokens if job.clear_tokens
                   else int(model.token_kept[:job.n_tokens].sum()))
    res = model.run_job(job, memory)
    valid = job.validate() == Status.OK
    head_prune = Prune(heads_before, job.head_keep) if valid and job.head_keep else None
    if valid and job.token_keep:
        token_prune = Prune(toks_before, job.token_keep)
    else:
        token_prune = None
    clear = bool(job.clear_tokens or job.clear_heads or job.reselect or job.imp_shift)
    keys = res.keys.numpy().astype(np.int64)
    values = np.sort(res.values.numpy().astype(np.int64))
    return JobShape(step=step, label=label, status=int(res.status), n_tokens=job.n_tokens,
                    clear=clear, head_prune=head_prune,
                    token_prune=token_prune, keys=keys, values=values,
                    v_select=bool(job.v_topk and job.v_topk < keys.size),
                    lsb_fetched=bool(res.lsb_fetched), msb_bits=job.msb_bits,
                    lsb_bits=job.lsb_bits, v_bits=job.v_bits, k_msb_base=job.k_msb_base,
                    k_lsb_base=job.k_lsb_base, v_base=job.v_base,
                    acc_tokens=bool(job.acc_tokens),
                    hazard=valid and job.changes_pruning_state,
                    rescale=bool(valid and job.imp_shift))


def shapes_of(jobs: Iterable[tuple[Job, int, str]], memory: DramImage,
              params: CoreParams = DEFAULT_PARAMS) -> Iterator[JobShape]:
    """Shapes of (job, step, label) in order, through one reference model."""
    model = SpAttenCoreModel(params)
    for job, step, label in jobs:
        yield shape_of(job, model, memory, step, label)


def workload_shapes(workload: str, steps: str | None = None, layers: str | None = None,
                    trace: str = "smollm2_prose",
                    params: CoreParams = DEFAULT_PARAMS) -> tuple[str, list[JobShape]]:
    """(description, shapes) of a GPT-2 workload's jobs, as `spatten-dv sim --workload` runs
    them (q/K/V from `trace`, the environment's default)."""
    from spatten_dv.traces.loader import load_trace
    from spatten_dv.traces.workload import (
        TraceSource,
        build_jobs,
        load_workload,
        parse_selection,
        resolve_workload,
    )
    from spatten_dv.verif.sequences.trace_replay import resolve_trace

    wl = load_workload(resolve_workload(workload))
    tpath = resolve_trace(trace)
    source = TraceSource(load_trace(tpath), tpath, params)
    plan = build_jobs(wl, source, steps=parse_selection(steps, "steps"),
                      layers=parse_selection(layers, "layers"), params=params)
    jobs = ((pj.job, pj.row.step, f"s{pj.row.step} l{pj.row.layer} h{pj.row.head}")
            for pj in plan.jobs)
    return f"workload {wl.name} (q/K/V from {tpath.name})", list(
        shapes_of(jobs, plan.memory, params))


def trace_shapes(trace: str, steps: str | None = None, layers: str | None = None,
                 heads: str | None = None,
                 params: CoreParams = DEFAULT_PARAMS) -> tuple[str, list[JobShape]]:
    """(description, shapes) of a trace replay's jobs, as `spatten-dv sim --trace` runs them."""
    from spatten_dv.traces.loader import load_trace
    from spatten_dv.verif.memory_alloc import PlaneAllocator
    from spatten_dv.verif.sequences.trace_replay import resolve_trace, select, trace_jobs

    path = resolve_trace(trace)
    tr = load_trace(path)
    m = tr.meta
    memory = DramImage()
    alloc = PlaneAllocator(memory, params)
    sel = [select(text or "", count, what) for text, count, what in
           ((steps, m.n_steps, "steps"), (layers, m.n_layers, "layers"),
            (heads, m.n_heads, "heads"))]
    jobs = ((job, meta["step"], label)
            for job, label, meta in trace_jobs(tr, path, *sel, alloc.place, params))
    return f"trace {path.name}", list(shapes_of(jobs, memory, params))
