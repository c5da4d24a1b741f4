"""`spatten-dv bench`: hardware and simulation-speed figures (a benchmark, not a test).

Cases, each printed as a table row and appended to `<out>/bench.jsonl` as it finishes:

* speed: the same GPT-2-small per8 jobs through the bare Verilator C++ harness
  (bench/bare/main.cpp, fixed-latency memory, no Python) and through the pyuvm environment with
  the same fixed-latency memory (dram=ideal): simulated cycles per second of each, bit-exact.
* decode: the environment on `default` (DDR4-2400R, one channel) and on `paper` (HBM2, 8
  channels) over decode steps of the per8 workload and of the committed traces: cycles per step
  over the bandwidth-bound cycles of that memory system.
* topk: the top-k engine's pass cycles against ceil(m/16)+3 (tests/hdl/cocotb_topk.py).
* kv_bytes: the reference model over the per8 workload: dense 12-bit K/V bytes over fetched.
* workload: the whole GPT-2-small per8 workload through the environment (full run only; the
  quick run extrapolates it from its per8 decode case).

The last line printed is one JSON object with the headline figures (decode_cycles_over_bound:
the worst step of both configurations) and the per-configuration figures.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from spatten_dv.errors import UserError

WORKLOAD = "summary-gpt2-small-wikitext2-per8"
WORKLOAD_JOBS = 4608  # 32 steps x 12 layers x 12 heads
TRACES = ("smollm2_prose", "smollm2_code", "smollm2_dialogue")
MOP = "MOP4CLXOR"  # a bank-group-interleaving address mapping (models/dram/address_mapper.py)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="hardware and simulation-speed benchmark (JSON summary)",
                       description="Measure cycles against the DRAM bound, top-k cycles, K/V "
                       "traffic reduction, and the environment's speed against a bare "
                       "Verilator harness on the same jobs.")
    p.add_argument("--quick", action="store_true",
                   help="a few-minute subset (layer slices, no whole-workload run)")
    p.add_argument("--only", metavar="CASE[,CASE]",
                   help="run only these cases: speed, decode, topk, kv_bytes, workload")
    p.add_argument("--out", type=Path, default=Path("build/bench"),
                   help="results folder (default build/bench): bench.jsonl, summary.json")
    p.add_argument("--seed", type=int, default=1, help="seed of the environment runs")
    p.add_argument("--workers", type=int, default=2,
                   help="processes of the whole-workload case and of the decode case's runs "
                   "(default 2: one per core)")
    p.add_argument("--configs", default="default,paper",
                   help="configurations of the decode case (default: default,paper)")
    p.add_argument("--latency", type=int, default=20,
                   help="fixed memory latency of the speed case, cycles (default 20)")
    p.set_defaults(func=run)


CASES = ("speed", "decode", "topk", "kv_bytes", "workload")


class Recorder:
    """Prints a row per case and appends it to bench.jsonl at once."""

    def __init__(self, out: Path):
        self.path = out / "bench.jsonl"
        self.path.write_text("")
        self.rows: list[dict] = []
        print(f"{'case':<34} {'jobs':>5} {'cycles':>10} {'wall s':>8} {'cycles/s':>9}  figure",
              flush=True)

    def add(self, row: dict, figure: str = "") -> None:
        self.rows.append(row)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        cps = row.get("cycles_per_s")
        print(f"{row['case']:<34} {row.get('jobs', ''):>5} {row.get('cycles', ''):>10} "
              f"{row.get('wall_s', ''):>8} {'' if cps is None else round(cps):>9}  {figure}",
              flush=True)


# ------------------------------------------------------------------------------- cases

def _per8_plan(steps: str, layers: str):
    from spatten_dv.traces.loader import load_trace
    from spatten_dv.traces.workload import (
        TraceSource,
        build_jobs,
        load_workload,
        parse_selection,
        resolve_workload,
    )
    from spatten_dv.verif.sequences.trace_replay import resolve_trace

    wl = load_workload(resolve_workload(WORKLOAD))
    path = resolve_trace("smollm2_prose")  # the environment's default trace knob
    return build_jobs(wl, TraceSource(load_trace(path), path),
                      steps=parse_selection(steps or None, "steps"),
                      layers=parse_selection(layers or None, "layers"))


def env_run(name: str, sequences: str, knobs: dict, out: Path, seed: int) -> dict:
    """One environment run (speed build of Verilator); its summary plus per-step spans."""
    from spatten_dv.bench_figures import step_totals
    from spatten_dv.regress import TestSpec, run_one

    spec = TestSpec(name=name, sequences=sequences, knobs=knobs, tier="bench")
    t0 = time.monotonic()
    r = run_one(spec, "verilator", seed, out / "runs", progress=False, fast=True)
    if not r.passed:
        raise UserError(f"bench case {name}: the environment run failed: {r.failure}")
    s = r.summary
    records = [json.loads(x) for x in (r.folder / "jobs.jsonl").read_text().splitlines()]
    return {"jobs": s["jobs"], "checked": s["checked"], "mismatches": s["mismatches"],
            "cycles": s["sim_cycles"], "dram_bytes": s["dram_bytes"], "wall_s": s["wall_s"],
            "process_wall_s": round(time.monotonic() - t0, 2),
            "cycles_per_s": s["cycles_per_s"], "cpu_s": s.get("cpu_s"),
            "cycles_per_cpu_s": s.get("cycles_per_cpu_s"), "steps": step_totals(records),
            "folder": str(r.folder)}


def case_speed(rec: Recorder, out: Path, quick: bool, seed: int, latency: int) -> dict:
    from spatten_dv import bare

    steps, layers = "1", ("0" if quick else "")
    plan = _per8_plan(steps, layers)
    job_file = out / "bare" / f"per8_s{steps}_l{layers or 'all'}.jobs"
    bare.write_job_file(job_file, [pj.job for pj in plan.jobs], plan.memory, latency=latency)
    b = bare.run(bare.build(), job_file)
    if b["mismatches"]:
        raise UserError(f"bare harness: {b['mismatches']} job(s) differ from the model: "
                        f"{b['errors']}")
    rec.add({"case": f"speed/bare per8 s{steps} l{layers or 'all'}", **b},
            f"bit-exact, fixed latency {latency}")
    e = env_run(f"speed_env_s{steps}_l{layers or 'all'}", "workload_replay",
                {"workload": WORKLOAD, "steps": steps, "layers": layers, "dram": "ideal",
                 "ideal_latency": latency, "state_check": False}, out, seed)
    rec.add({"case": f"speed/env per8 s{steps} l{layers or 'all'}", **e},
            f"env/bare {e['cycles_per_s'] / b['cycles_per_s']:.3f} (CPU time: "
            f"{e['cycles_per_cpu_s'] / b['cycles_per_cpu_s']:.3f})")
    return {"bare": b, "env": e}


def _peak(dram: str, channels: int = 1) -> float:
    from spatten_dv.bench_figures import dram_peak_bytes_per_cycle

    return dram_peak_bytes_per_cycle(dram, channels)


def decode_memory(core: str, dram: str = "DDR4_2400R") -> dict:
    """The knobs of a decode run of configuration `core`: its own memory system (`paper`:
    HBM2 x 8, CONFIGURATION_KNOBS), else `dram` with one channel."""
    from spatten_dv.models.params import with_configuration_knobs

    return dict({"dram": dram, "channels": 1}, **with_configuration_knobs({"config": core}))


def case_decode(rec: Recorder, out: Path, quick: bool, seed: int,
                configs: tuple[str, ...] = ("default", "paper"), workers: int = 1) -> list[dict]:
    from spatten_dv.bench_figures import cycles_over_bound

    dram = "DDR4_2400R"
    # per8 step 1 whole (144 jobs: also the basis of --quick's whole-workload extrapolation);
    # the traces' step 0, whole or (--quick) the first two layers of the first trace
    trace_layers = "0:2" if quick else ""
    runs = [("per8", "workload_replay", {"workload": WORKLOAD, "steps": "1"}, "")]
    runs += [(t, "trace_replay", {"trace": t, "steps": "0"}, trace_layers) for t in
             (TRACES[:1] if quick else TRACES)]
    if not quick:  # the same core and DRAM with a bank-group-interleaving address mapping
        runs.append(("per8", "workload_replay",
                     {"workload": WORKLOAD, "steps": "1", "dram_mapper": MOP}, ""))
    # the `paper` configuration on its memory system (HBM2, 8 channels: CONFIGURATION_KNOBS)
    runs += [(label, seq, dict(knobs, config="paper"), layers)
             for label, seq, knobs, layers in list(runs) if "dram_mapper" not in knobs]
    runs = [r for r in runs if r[2].get("config", "default") in configs]

    def one(run):
        label, seq, knobs, layers = run
        mapper = knobs.get("dram_mapper", "")
        core = knobs.get("config", "default")
        mem = decode_memory(core, dram)
        suffix = f"_{mapper}" if mapper else ""
        name = f"decode_{core}_{label}_l{layers.replace(':', '-') or 'all'}{suffix}"
        return env_run(name, seq, dict(knobs, layers=layers, state_check=False, **mem),
                       out, seed), mem

    rows = []
    # the runs are simulator processes: threads are enough to run `workers` at once
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(one, r) for r in runs]
        # rows recorded in the runs' order, each as soon as its run (and the earlier) ended
        for (label, _seq, knobs, layers), fut in zip(runs, futures, strict=True):
            e, mem = fut.result()
            mapper = knobs.get("dram_mapper", "")
            core = knobs.get("config", "default")
            config = f"{core}+{mapper}" if mapper else core
            peak = _peak(mem["dram"], mem["channels"])
            for step, t in sorted(e["steps"].items()):
                ratio = cycles_over_bound(t["span"], t["bytes"], peak)
                row = {"case": f"decode/{config} {label} s{step} l{layers or 'all'}",
                       "config": config, "dram": mem["dram"], "channels": mem["channels"],
                       "peak_bytes_per_cycle": peak,
                       "jobs": t["jobs"], "cycles": t["span"], "bytes": t["bytes"],
                       "cycles_over_bound": ratio, "wall_s": e["wall_s"],
                       "cycles_per_s": e["cycles_per_s"], "run_cycles": e["cycles"],
                       "cycles_per_cpu_s": e["cycles_per_cpu_s"], "mismatches": e["mismatches"]}
                rec.add(row, f"cycles/bound {ratio:.3f}" if ratio else "")
                rows.append(row)
    return rows


def case_topk(rec: Recorder, out: Path) -> dict:
    import re

    from spatten_dv.sim import REPO_ROOT, SimulationFailed, hdl_sources, run_cocotb

    work = (out / "topk").resolve()
    t0 = time.monotonic()
    try:
        run_cocotb(toplevel="spatten_topk",
                   sources=hdl_sources("spatten_topk", "spatten_topk_stage", "spatten_sdp_ram"),
                   test_module="cocotb_topk", testcase="pass_cycles_vs_formula",
                   simulator="verilator", test_dir=REPO_ROOT / "tests" / "hdl", work_dir=work,
                   seed=1)
        passed = True
    except SimulationFailed:
        passed = False  # the figure is still in the log: report it, the bench is no gate
    log = (work / "sim-cocotb_topk-pass_cycles_vs_formula.log").read_text(errors="replace")
    m = re.findall(r"passes: (\d+), worst ratio ([0-9.]+)", log)
    if not m:
        raise UserError(f"top-k case: no 'worst ratio' line in {work}")
    passes, worst = int(m[-1][0]), float(m[-1][1])
    row = {"case": "topk/pass cycles vs ceil(m/16)+3", "passes": passes,
           "topk_cycles_over_formula": worst, "test_passed": passed,
           "wall_s": round(time.monotonic() - t0, 1)}
    rec.add(row, f"worst {worst:.3f} over {passes} passes")
    return row


def case_kv_bytes(rec: Recorder, quick: bool) -> dict:
    import torch

    from spatten_dv.bench_figures import kv_bytes_reduction
    from spatten_dv.traces.workload import replay

    torch.set_num_threads(1)
    t0 = time.monotonic()
    steps = "0:2" if quick else ""
    report = replay(_per8_plan(steps, ""))
    t = report.total
    red = kv_bytes_reduction(t.dense_bytes, t.bytes)
    row = {"case": f"kv_bytes/model per8 s{steps or 'all'}", "jobs": t.rows,
           "dense_bytes": t.dense_bytes, "fetched_bytes": t.bytes,
           "per8_kv_bytes_reduction": red, "rows_matching_csv": report.ok,
           "wall_s": round(time.monotonic() - t0, 1)}
    rec.add(row, f"{red:.2f}x" if red else "")
    return row


def case_workload(rec: Recorder, out: Path, seed: int, workers: int, n_steps: int = 32,
                  layers: str = "") -> dict:
    """Every step of the per8 workload, split into `workers` contiguous step ranges run at
    the same time (each range starts from a cleared pruning state, as every step does)."""
    from concurrent.futures import ProcessPoolExecutor

    bounds = [round(i * n_steps / workers) for i in range(workers + 1)]
    ranges = [f"{a}:{b}" for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
    t0 = time.monotonic()
    with ProcessPoolExecutor(max_workers=len(ranges)) as pool:
        futures = [pool.submit(env_run, f"workload_per8_s{r.replace(':', '-')}",
                               "workload_replay", {"workload": WORKLOAD, "steps": r,
                                                   "layers": layers, "state_check": False},
                               out, seed)
                   for r in ranges]
        parts = [f.result() for f in futures]
    wall = round(time.monotonic() - t0, 1)
    row = {"case": "workload/env per8 every step", "jobs": sum(p["jobs"] for p in parts),
           "checked": sum(p["checked"] for p in parts),
           "mismatches": sum(p["mismatches"] for p in parts),
           "cycles": sum(p["cycles"] for p in parts),
           "dram_bytes": sum(p["dram_bytes"] for p in parts), "wall_s": wall,
           "process_wall_s": wall, "workers": len(ranges),
           "cpu_s": round(sum(p["cpu_s"] or 0 for p in parts), 1),
           "cycles_per_s": round(sum(p["cycles"] for p in parts) / wall),
           "parts": [{k: v for k, v in p.items() if k != "steps"} for p in parts]}
    rec.add(row, f"{wall:.0f} s wall on {len(ranges)} processes, {row['mismatches']} "
            "mismatches")
    return row


# ------------------------------------------------------------------------------- summary

def summarize(speed: dict | None, decode: list[dict], topk: dict | None, kv: dict | None,
              workload: dict | None, quick: bool) -> dict:
    from spatten_dv.bench_figures import ratio, worst

    bare_cps = speed["bare"]["cycles_per_s"] if speed else None
    env_cps = speed["env"]["cycles_per_s"] if speed else None
    bare_cpu = speed["bare"].get("cycles_per_cpu_s") if speed else None
    env_cpu = speed["env"].get("cycles_per_cpu_s") if speed else None
    def config_figures(name: str, mapper: str) -> dict:
        rows = [r for r in decode if r["config"] == name]
        return {"dram": rows[0].get("dram", "DDR4_2400R") if rows else None,
                "channels": rows[0].get("channels", 1) if rows else None, "dram_mapper": mapper,
                "decode_cycles_over_bound": worst(r["cycles_over_bound"] for r in rows),
                "decode_cases": {r["case"]: round(r["cycles_over_bound"], 4)
                                 for r in rows if r["cycles_over_bound"]}}

    default = config_figures("default", "RoBaRaCoCh")
    mop = config_figures(f"default+{MOP}", MOP)
    paper = config_figures("paper", "RoBaRaCoCh")
    summary = {
        # the worst decode step of `default` (DDR4-2400R, 1 channel) and `paper` (HBM2, 8)
        "decode_cycles_over_bound": worst([default["decode_cycles_over_bound"],
                                           paper["decode_cycles_over_bound"]]),
        "topk_cycles_over_formula": topk["topk_cycles_over_formula"] if topk else None,
        "per8_kv_bytes_reduction": kv["per8_kv_bytes_reduction"] if kv else None,
        "bare_cycles_per_s": bare_cps,
        "env_cycles_per_s": env_cps,
        "env_over_bare": ratio(env_cps, bare_cps),
        # the same per CPU second: what a shared machine's load does not distort
        "bare_cycles_per_cpu_s": bare_cpu, "env_cycles_per_cpu_s": env_cpu,
        "env_over_bare_cpu": ratio(env_cpu, bare_cpu),
        "gpt2_small_workload_wall_s": workload["process_wall_s"] if workload else None,
        "configurations": {"default": default,
                           f"default+{MOP}": mop if mop["decode_cases"] else None,
                           "paper": paper if paper["decode_cases"] else None},
        "quick": quick,
    }
    per8 = [r for r in decode if " per8 " in r["case"]]
    if workload is None and per8 and per8[0]["jobs"]:
        # the per8 decode run's simulation time per job, scaled to every job of the workload
        # (wall clock, and CPU time: what an unloaded machine would take)
        r = per8[0]
        cycles = r.get("run_cycles", r["cycles"])
        scale = WORKLOAD_JOBS / r["jobs"]
        summary["gpt2_small_workload_wall_s_extrapolated"] = round(
            cycles / r["cycles_per_s"] * scale, 1) if r["cycles_per_s"] else None
        cpu = r.get("cycles_per_cpu_s")
        summary["gpt2_small_workload_cpu_s_extrapolated"] = round(
            cycles / cpu * scale, 1) if cpu else None
    return summary


def run(args: argparse.Namespace) -> int:
    only = set(CASES) if not args.only else {c.strip() for c in args.only.split(",")}
    bad = sorted(only - set(CASES))
    if bad:
        raise UserError(f"--only {args.only!r}: unknown case(s) {bad}; cases: "
                        f"{', '.join(CASES)}")
    if not 1 <= args.workers <= 32:
        raise UserError(f"--workers must be in 1..32, got {args.workers}")
    if args.latency < 1:
        raise UserError(f"--latency must be >= 1, got {args.latency}")
    configs = tuple(c.strip() for c in args.configs.split(",") if c.strip())
    if not configs or set(configs) - {"default", "paper"}:
        raise UserError(f"--configs {args.configs!r}: choose from default, paper")
    if args.quick:
        only.discard("workload")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {args.out}: {exc.strerror or exc}") from None
    out = args.out.resolve()
    rec = Recorder(out)
    speed = topk = kv = workload = None
    decode: list[dict] = []
    if "topk" in only:
        topk = case_topk(rec, out)
    if "kv_bytes" in only:
        kv = case_kv_bytes(rec, args.quick)
    if "speed" in only:
        speed = case_speed(rec, out, args.quick, args.seed, args.latency)
    if "decode" in only:
        decode = case_decode(rec, out, args.quick, args.seed, configs, args.workers)
    if "workload" in only:
        workload = case_workload(rec, out, args.seed, args.workers)
    summary = summarize(speed, decode, topk, kv, workload, args.quick)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, separators=(", ", ": ")), flush=True)
    return 0
