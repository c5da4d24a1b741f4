"""cocotb test module: replay a GPT-2 workload slice on spatten_core behind a DRAM model.

Run by `spatten-dv sim` (spatten_dv/commands/sim.py), which passes the run's spec as JSON in
SPATTEN_SIM_SPEC: {csv, trace | synthetic, steps, layers, head_pruning, dram, ideal_latency,
channels, period_ps, out}. The jobs come from `spatten_dv.traces.workload.build_jobs`; each goes
through the DUT and through one `SpAttenCoreModel`; every result field except cycles must
match the model bit for bit and the model's counts must match the CSV row. One JSON line per
job is appended to `out` as soon as the job ends (a failed or interrupted run keeps every job
before it).
"""

from __future__ import annotations

import json
import os

import cocotb

from spatten_dv.models.core import SpAttenCoreModel
from spatten_dv.models.dram.config import SystemConfig
from spatten_dv.models.dram.ideal import IdealMemory
from spatten_dv.models.dram.memory_system import MemorySystem
from spatten_dv.models.dram.presets import TIMING_PRESETS
from spatten_dv.traces.loader import load_trace
from spatten_dv.traces.workload import (
    SyntheticSource,
    TraceSource,
    build_jobs,
    check_result,
    load_workload,
)
from spatten_dv.verif.axi_read_responder import attach_read_responders
from spatten_dv.verif.core_driver import CoreDriver
from spatten_dv.verif.core_scoreboard import compare_result
from spatten_dv.verif.dram_target import DramTarget


def plan_from_spec(spec: dict):
    wl = load_workload(spec["csv"])
    if spec.get("trace"):
        source = TraceSource(load_trace(spec["trace"]), spec["trace"])
    else:
        source = SyntheticSource(seed=int(spec["synthetic"]), n_heads=wl.n_heads)
    steps = set(spec["steps"]) if spec.get("steps") is not None else None
    layers = set(spec["layers"]) if spec.get("layers") is not None else None
    return build_jobs(wl, source, steps=steps, layers=layers,
                      head_pruning=spec.get("head_pruning", "keep"))


def dram_model(spec: dict):
    if spec["dram"] == "ideal":
        return IdealMemory(read_latency=int(spec["ideal_latency"]))
    preset = TIMING_PRESETS[spec["dram"]]
    return MemorySystem(SystemConfig.from_presets(preset.standard, spec["dram"],
                                                  channels=int(spec["channels"])))


@cocotb.test(timeout_time=7 * 24 * 3600, timeout_unit="sec")  # each job has its own timeout
async def replay_workload(dut):
    spec = json.loads(os.environ["SPATTEN_SIM_SPEC"])
    plan = plan_from_spec(spec)
    period = int(spec["period_ps"])
    driver = CoreDriver(dut, plan.params)
    await driver.start(period)
    target = DramTarget(dram_model(spec), period)
    attach_read_responders(dut, dut.clk, plan.memory, target, int(spec["channels"]))
    await target.start(dut.clk)
    model = SpAttenCoreModel(plan.params)
    with open(spec["out"], "w", encoding="utf-8") as out:
        for i, pj in enumerate(plan.jobs):
            r = pj.row
            ref = model.run_job(pj.job, plan.memory)
            reads0 = target.reads
            got = await driver.run(pj.job)
            errs = compare_result(got, ref) + \
                [f"model vs CSV: {e}" for e in check_result(pj, ref, plan.params)]
            out.write(json.dumps({
                "job": i, "line": r.line, "step": r.step, "layer": r.layer, "head": r.head,
                "n_tokens": r.n_tokens, "keys": got["n_keys"], "values": got["n_values"],
                "lsb_fetched": got["lsb_fetched"], "beats": got["beats"],
                "cycles": got["cycles"], "dram_reads": target.reads - reads0,
                "status": got["status"], "actions": list(pj.actions), "errors": errs,
            }, separators=(",", ":")) + "\n")
            out.flush()
            assert not errs, (f"{plan.workload.name} line {r.line} (step {r.step}, layer "
                              f"{r.layer}, head {r.head}): " + "; ".join(errs))
