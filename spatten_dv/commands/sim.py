"""`spatten-dv sim`: replay a GPT-2 workload slice on the RTL core behind a DRAM timing model.

The workload rows become core jobs (`spatten-dv workload`, docs/workloads.md); the jobs run on
hdl/spatten_core.v (Verilator or Icarus) with one AXI read responder per read channel backed by
the DRAM model, and every result is checked bit for bit against the reference model and its
counts against the CSV (verif/workload_replay.py). Prints cycles, DRAM traffic and reads per
step; writes one JSON line per job to OUT/jobs.jsonl as the jobs finish.
"""

from __future__ import annotations

import argparse
import json
import time
from importlib import resources
from pathlib import Path

from spatten_dv.errors import UserError

DEFAULT_TRACE = "smollm2_prose.safetensors"  # shipped with spatten_dv.traces
BEAT_BYTES = 32  # 256-bit AXI data bus


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="replay a GPT-2 workload slice on the RTL core with a DRAM "
                       "model: cycles and DRAM traffic per step, checked against the model")
    p.add_argument("workload", help="workload CSV or shipped name (spatten-dv workload list)")
    data = p.add_mutually_exclusive_group()
    data.add_argument("--trace", type=Path, metavar="T",
                      help="q/K/V from this trace (default: the shipped "
                      "traces/smollm2_prose.safetensors)")
    data.add_argument("--synthetic", type=int, metavar="SEED",
                      help="SYNTHETIC seeded Gaussian q/K/V instead of a trace")
    p.add_argument("--steps", default="0", metavar="SEL",
                   help="decode steps: N, A:B (half-open) or a comma list (default 0)")
    p.add_argument("--layers", metavar="SEL", help="layers, as --steps (default all)")
    p.add_argument("--head-pruning", choices=("keep", "omit"), default="keep")
    p.add_argument("--dram", default="DDR4_2400R",
                   help="DDR4_2400R (default), DDR4_3200AA, HBM2_2000Mbps or ideal")
    p.add_argument("--ideal-latency", type=int, default=20,
                   help="read latency in cycles of --dram ideal (default 20)")
    p.add_argument("--channels", type=int, default=1,
                   help="AXI read channels of the core = DRAM channels (default 1)")
    p.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator")
    p.add_argument("--clock-mhz", type=float, default=1000.0,
                   help="core and DRAM controller clock (default 1000 MHz)")
    p.add_argument("--out", type=Path, default=Path("build/sim"),
                   help="folder for jobs.jsonl and summary.json (default build/sim)")
    p.add_argument("--seed", type=int, default=None, help="cocotb random seed")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def _spec(args: argparse.Namespace) -> dict:
    from spatten_dv.models.dram.presets import TIMING_PRESETS
    from spatten_dv.traces.workload import load_workload, parse_selection, resolve_workload

    if args.dram != "ideal" and args.dram not in TIMING_PRESETS:
        raise UserError(f"--dram {args.dram!r}: choose ideal or one of "
                        f"{', '.join(TIMING_PRESETS)}")
    if args.channels < 1 or args.channels > 8:
        raise UserError(f"--channels must be 1..8, got {args.channels}")
    if args.ideal_latency < 1:
        raise UserError(f"--ideal-latency must be >= 1, got {args.ideal_latency}")
    if not 1.0 <= args.clock_mhz <= 5000.0:
        raise UserError(f"--clock-mhz must be in 1..5000, got {args.clock_mhz}")
    csv = resolve_workload(args.workload)
    wl = load_workload(csv)
    trace = None
    if args.synthetic is None:
        trace = args.trace or Path(str(resources.files("spatten_dv.traces") / DEFAULT_TRACE))
        if not Path(trace).is_file():
            raise UserError(f"no such trace file: {trace}")
    steps = parse_selection(args.steps, "steps")
    layers = parse_selection(args.layers, "layers")
    if not any((steps is None or r.step in steps) and (layers is None or r.layer in layers)
               for r in wl.rows):
        raise UserError(f"{csv}: --steps {args.steps} --layers {args.layers or 'all'} match "
                        f"no row")
    return {"csv": str(csv), "trace": str(trace) if trace else None,
            "synthetic": args.synthetic, "steps": sorted(steps) if steps else None,
            "layers": sorted(layers) if layers else None, "head_pruning": args.head_pruning,
            "dram": args.dram, "ideal_latency": args.ideal_latency, "channels": args.channels,
            "period_ps": round(1e6 / args.clock_mhz)}


def summarize(records: list[dict], spec: dict) -> dict:
    steps: dict[int, dict] = {}
    for r in records:
        s = steps.setdefault(r["step"], {"step": r["step"], "jobs": 0, "keys": 0, "values": 0,
                                         "lsb_refetches": 0, "beats": 0, "cycles": 0,
                                         "dram_reads": 0})
        s["jobs"] += 1
        s["keys"] += r["keys"]
        s["values"] += r["values"]
        s["lsb_refetches"] += r["lsb_fetched"]
        s["beats"] += r["beats"]
        s["cycles"] += r["cycles"]
        s["dram_reads"] += r["dram_reads"]
    total = {k: sum(s[k] for s in steps.values()) for k in
             ("jobs", "keys", "values", "lsb_refetches", "beats", "cycles", "dram_reads")}
    for d in list(steps.values()) + [total]:
        d["bytes"] = d["beats"] * BEAT_BYTES
        d["bytes_per_cycle"] = round(d["bytes"] / d["cycles"], 3) if d["cycles"] else 0.0
    return {"spec": spec, "steps": [steps[k] for k in sorted(steps)], "total": total,
            "mismatches": sum(1 for r in records if r["errors"])}


def _print(summary: dict, wall: float, out: Path) -> None:
    spec = summary["spec"]
    data = spec["trace"] or f"SYNTHETIC seed {spec['synthetic']}"
    dram = spec["dram"] if spec["dram"] != "ideal" else f"ideal, {spec['ideal_latency']} cycles"
    print(f"workload  {Path(spec['csv']).name}")
    print(f"data      {data}")
    print(f"memory    {dram}, {spec['channels']} channel(s), clock period "
          f"{spec['period_ps']} ps")
    print(f"{'step':>5} {'jobs':>5} {'keys':>8} {'values':>8} {'LSB':>5} {'DRAM MB':>9} "
          f"{'reads':>8} {'cycles':>10} {'B/cycle':>8}")
    for s in summary["steps"] + [dict(summary["total"], step="all")]:
        print(f"{s['step']:>5} {s['jobs']:>5} {s['keys']:>8} {s['values']:>8} "
              f"{s['lsb_refetches']:>5} {s['bytes'] / 1e6:>9.3f} {s['dram_reads']:>8} "
              f"{s['cycles']:>10} {s['bytes_per_cycle']:>8.2f}")
    print(f"check     {summary['total']['jobs']} jobs, every result bit-exact to the model and "
          f"every count equal to the CSV" if not summary["mismatches"] else
          f"check     {summary['mismatches']} job(s) DIFFER (see {out / 'jobs.jsonl'})")
    print(f"wall      {wall:.1f} s; per job: {out / 'jobs.jsonl'}")


def run(args: argparse.Namespace) -> int:
    from spatten_dv.sim import CORE_MODULES, SimulationFailed, hdl_sources, run_cocotb

    spec = _spec(args)
    out = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {out}: {exc.strerror or exc}") from None
    jobs_path = (out / "jobs.jsonl").resolve()
    spec["out"] = str(jobs_path)
    if not args.json:
        print(f"sim: building/running spatten_core on {args.simulator} "
              f"(per-job progress in {jobs_path})", flush=True)
    t0 = time.monotonic()
    failure = None
    try:
        run_cocotb(toplevel="spatten_core", sources=hdl_sources(*CORE_MODULES),
                   test_module="spatten_dv.verif.workload_replay", simulator=args.simulator,
                   parameters={"N_CH": args.channels},
                   extra_env={"SPATTEN_SIM_SPEC": json.dumps(spec)}, seed=args.seed)
    except SimulationFailed as exc:
        failure = str(exc)
    wall = time.monotonic() - t0
    records = []
    if jobs_path.is_file():
        records = [json.loads(line) for line in jobs_path.read_text().splitlines() if line]
    summary = summarize(records, spec)
    summary["wall_s"] = round(wall, 1)
    summary["failure"] = failure
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    if args.json:
        print(json.dumps(summary))
    else:
        if records:
            _print(summary, wall, out)
        if failure:
            print(f"sim: FAILED: {failure}")
    return 1 if failure or summary["mismatches"] else 0
