"""The performance model against the RTL: a small trace slice runs on Verilator (the
environment's jobs.jsonl gives each job's accept and result cycles) and the model's per-step
span (first descriptor accepted .. last result taken, jobs overlapping on the core's two job
stages) must agree within 5 %. The slice (4 jobs: each layer's first job prunes and waits for
the back stage, the second overlaps the first) runs on the ideal fixed-latency memory, which
keeps it free of DRAM refresh, whose ~450-cycle stalls land on a job or not by chance (a small
slice on DDR4 would swing by more than 5 %); the DDR4 agreement on larger slices is measured in
docs/perf.md (spatten-dv perf ... --rtl)."""

import json
import os
from pathlib import Path

from spatten_dv.models.perf.configs import DEFAULT
from spatten_dv.models.perf.measured import rtl_step_cycles
from spatten_dv.models.perf.shape import trace_shapes
from spatten_dv.models.perf.steps import predict
from spatten_dv.regress import TestSpec, run_one

OUT = Path(os.environ.get("SPATTEN_SIM_OUT", "build/sim-pytest"))
SLICE = {"trace": "smollm2_code", "steps": "3", "layers": "0,28", "heads": "4,5"}
TOLERANCE = 0.05


def test_model_agrees_with_rtl_per_step():
    knobs = dict(SLICE, dram="ideal", state_check="false", coverage="false")
    spec = TestSpec(name="perf_agreement", sequences="trace_replay", knobs=knobs,
                    tier="adhoc")
    r = run_one(spec, "verilator", 1, OUT, progress=False)
    assert r.passed, f"RTL run failed: {r.failure} (log: {r.folder})"
    records = [json.loads(line) for line in
               (r.folder / "jobs.jsonl").read_text(encoding="utf-8").splitlines()]
    rtl = rtl_step_cycles(records, span=True)
    _, shapes = trace_shapes(SLICE["trace"], SLICE["steps"], SLICE["layers"], SLICE["heads"])
    assert len(shapes) == len(records)
    for rec, shape in zip(records, shapes, strict=True):  # same jobs: same keys, values, refetch
        assert (rec["keys"], rec["values"], bool(rec["lsb_fetched"])) == (
            shape.n_keys, shape.n_values, shape.lsb_fetched)
    _, steps = predict(shapes, DEFAULT.with_(dram="ideal"))
    for step, cycles in rtl.items():
        model = steps[step].cycles
        assert abs(model / cycles - 1) <= TOLERANCE, (
            f"step {step}: RTL span {cycles} cycles, model {model:.0f} "
            f"({100 * (model / cycles - 1):+.2f} %)")
