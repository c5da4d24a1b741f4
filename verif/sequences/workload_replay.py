"""GPT-2 workload replay: SpAtten's published workload summaries converted into core jobs.

The rows of a workload CSV (knob `workload`: a shipped name or a CSV path; `steps` / `layers`
selections) become jobs with `spatten_dv.traces.workload.build_jobs` (docs/workloads.md): q, K, V
from a trace (knob `trace`; the row's layer/head/step map onto the trace's), the CSV's widths,
token and head budgets and LSB threshold. The planes the converter laid out are copied into the
environment's DRAM. Besides the bit-exact scoreboard, every job's model result must reproduce
its CSV row (keys, values, LSB refetch, bytes): the item's `check`.
"""

from __future__ import annotations

from spatten_dv.traces.loader import load_trace
from spatten_dv.traces.workload import (
    TraceSource,
    build_jobs,
    check_result,
    load_workload,
    parse_selection,
    resolve_workload,
)
from spatten_dv.verif.sequences.base import JobSequence
from spatten_dv.verif.sequences.trace_replay import resolve_trace


class WorkloadReplaySeq(JobSequence):
    async def body(self):
        wl = load_workload(resolve_workload(self.cfg.workload))
        trace_path = resolve_trace(self.cfg.trace)
        source = TraceSource(load_trace(trace_path), trace_path, self.params)
        plan = build_jobs(wl, source, steps=parse_selection(self.cfg.steps or None, "steps"),
                          layers=parse_selection(self.cfg.layers or None, "layers"),
                          params=self.params)
        for region in plan.memory.regions:
            self.memory.write(region.base, region.data)
        self.logger.info("workload replay %s on %s: %d jobs", wl.name, trace_path.name,
                         len(plan.jobs))
        params = self.params
        for pj in plan.jobs:
            r = pj.row

            def check(ref, pj=pj):
                return check_result(pj, ref, params)

            await self.send(pj.job, f"{wl.name} s{r.step} l{r.layer} h{r.head}",
                            meta={"workload": wl.name, "line": r.line, "step": r.step,
                                  "layer": r.layer, "head": r.head,
                                  "actions": list(pj.actions)}, check=check)
