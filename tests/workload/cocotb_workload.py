"""cocotb replay of GPT-2 workload slices on spatten_core, bit-exact to SpAttenCoreModel.

Env WORKLOAD_SLICES is a JSON list of slices {csv, trace, steps, layers}. Each slice is
converted with spatten_dv.traces.workload.build_jobs (its K/V planes at its own base, all in one
DramImage); the jobs of all slices run in order through the DUT and through one
SpAttenCoreModel (tests/hdl/cocotb_core.py's Bench compares every result field except cycles),
and each model result is checked against its CSV row (keys, values, LSB refetch, widths). A
JSON summary (per job counts and cycles) goes to env WORKLOAD_RESULT.
"""

import json
import os
import sys
import time

import cocotb

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hdl"))

from cocotb_core import Bench, attach, setup  # noqa: E402

from spatten_dv.models.core import SpAttenCoreModel  # noqa: E402
from spatten_dv.models.memory import DramImage  # noqa: E402
from spatten_dv.traces.loader import load_trace  # noqa: E402
from spatten_dv.traces.workload import (  # noqa: E402
    TraceSource,
    build_jobs,
    check_result,
    load_workload,
)

SLICE_SPACING = 0x1000_0000  # slice i's planes start at (i + 1) * 256 MiB


@cocotb.test(timeout_time=3000, timeout_unit="sec")
async def workload_slices(dut):
    slices = json.loads(os.environ["WORKLOAD_SLICES"])
    memory = DramImage()
    plans = []
    for i, spec in enumerate(slices):
        wl = load_workload(spec["csv"])
        source = TraceSource(load_trace(spec["trace"]), spec["trace"])
        plan = build_jobs(wl, source, steps=set(spec["steps"]), layers=set(spec["layers"]),
                          planes_base=(i + 1) * SLICE_SPACING)
        for region in plan.memory.regions:
            memory.write(region.base, region.data)
        plans.append(plan)
    await setup(dut)
    bench = Bench(dut, None)
    bench.mem = memory
    bench.model = SpAttenCoreModel(plans[0].params)
    await attach(dut, bench)
    records = []
    t0 = time.perf_counter()
    for i, plan in enumerate(plans):
        for pj in plan.jobs:
            r = pj.row
            label = f"s{r.step} l{r.layer} h{r.head} {'+'.join(pj.actions)}"
            ref, got = await bench.run(pj.job, label=label[:40])
            errs = check_result(pj, ref, plan.params)
            assert not errs, f"{plan.workload.name} line {r.line} ({label}): model differs " \
                f"from the CSV: {errs}"
            records.append({"slice": i, "line": r.line, "step": r.step, "layer": r.layer,
                            "head": r.head, "n_tokens": r.n_tokens, "keys": got["n_keys"],
                            "values": got["n_values"], "lsb_fetched": got["lsb_fetched"],
                            "beats": got["beats"], "cycles": got["cycles"],
                            "actions": list(pj.actions)})
        done = [x for x in records if x["slice"] == i]
        dut._log.info("slice %d %s steps %s layers %s: %d jobs, %d keys, %d values, %d LSB "
                      "refetches, %d beats, %d cycles", i, plan.workload.name,
                      slices[i]["steps"], slices[i]["layers"], len(done),
                      sum(x["keys"] for x in done), sum(x["values"] for x in done),
                      sum(x["lsb_fetched"] for x in done), sum(x["beats"] for x in done),
                      sum(x["cycles"] for x in done))
    wall = time.perf_counter() - t0
    out = os.environ.get("WORKLOAD_RESULT")
    if out:
        with open(out, "w") as f:
            json.dump({"slices": slices, "jobs": records, "wall_s": wall}, f)
