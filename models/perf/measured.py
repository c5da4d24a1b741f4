"""The RTL measurements the model is checked against (docs/perf.md "Agreement").

`SELECTIONS` are slices of the committed traces and of the GPT-2 small per8 workload, run on
Verilator behind DDR4-2400R (the environment's default) or the ideal memory, on the default core,
and four whole decode steps on the `paper` core (`config` paper, HBM2 x 8), which `agreement()`
models with the `paper` configuration. `collect()` runs them
(`spatten-dv sim` through spatten_dv.regress, nice'd, about 30-60 minutes on a shared 2-core
machine) and writes one record per job (step, keys, values, LSB refetch, beats, r_cycles, the
cycles its descriptor was accepted and its result taken) to models/perf/data/rtl_jobs.json,
each selection marked with the core it was measured on (`core`: "pipelined", the two-stage job
overlap; "sequential", one job at a time: the selections measured before the overlap, which
have no accept/result cycles); `load()` reads that committed table. Regenerate with
    nox -s perf_measure [-- --only NAME]   (python -m spatten_dv.models.perf.measured)
`agreement()` compares per step the span (first accept .. last result, what a step takes) when
the records have the accept/result cycles, else (sequential core only) the sum of the jobs'
cycles, with the model configured for the core the selection was measured on.
The test suite does not rely only on this table: tests/perf/test_rtl_agreement.py runs a slice
on the RTL every time.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DATA = Path(__file__).with_name("data") / "rtl_jobs.json"
KNOBS = {"state_check": "false", "coverage": "false"}  # neither changes a job's cycles
# a selection's `config` knob (the core's build, spatten-dv sim config=...) is the model
# configuration `agreement()` predicts it with (models/perf/configs.py; default: `default`)
PAPER_KNOBS = {"config": "paper", "dram": "HBM2_2000Mbps", "channels": "8"}

SELECTIONS = {
    "code_s0_s3": {"trace": "smollm2_code", "steps": "0,3", "layers": "0,14,28",
                   "heads": "0,4,8"},
    "dialogue_s0_s5": {"trace": "smollm2_dialogue", "steps": "0,5", "layers": "0,14,28",
                       "heads": "0,4,8"},
    "prose_s7": {"trace": "smollm2_prose", "steps": "7", "layers": "0,14,29",
                 "heads": "0,4,8"},
    # whole decode steps (270 jobs; per8: 144 jobs per step)
    "code_s3_all": {"trace": "smollm2_code", "steps": "3"},
    "prose_s7_all": {"trace": "smollm2_prose", "steps": "7"},
    "dialogue_s5_all": {"trace": "smollm2_dialogue", "steps": "5"},
    "per8_s0_s1_all": {"workload": "summary-gpt2-small-wikitext2-per8", "steps": "0:2"},
    "prose_s2_ideal": {"trace": "smollm2_prose", "steps": "2", "layers": "0,10,20,29",
                       "heads": "0,3,6", "dram": "ideal"},
    "per8_s0_s1": {"workload": "summary-gpt2-small-wikitext2-per8", "steps": "0:2",
                   "layers": "0,11"},
    # the `paper` core (--config paper: 8 keys/values a cycle, HBM2 x 8), whole decode steps
    "paper_per8_s1_all": {"workload": "summary-gpt2-small-wikitext2-per8", "steps": "1",
                          **PAPER_KNOBS},
    "paper_prose_s0_all": {"trace": "smollm2_prose", "steps": "0", **PAPER_KNOBS},
    "paper_code_s0_all": {"trace": "smollm2_code", "steps": "0", **PAPER_KNOBS},
    "paper_dialogue_s0_all": {"trace": "smollm2_dialogue", "steps": "0", **PAPER_KNOBS},
}


COLUMNS = ("step", "layer", "head", "keys", "values", "lsb_fetched", "beats", "cycles",
           "accept_cycle", "result_cycle")
CORE = "pipelined"  # the core `collect` measures (hdl/spatten_core.v: two job stages)
LEGACY_CORE = "sequential"  # a selection without a `core` mark: measured before the overlap


def records_of(jobs_jsonl: Path) -> list[dict]:
    return [{k: r[k] for k in COLUMNS} for r in
            map(json.loads, jobs_jsonl.read_text(encoding="utf-8").splitlines())]


def load(path: Path = DATA) -> dict:
    """{name: {"selection": ..., "core": ..., "jobs": [{column: value}, ...]}} from the
    committed table (a column the table lacks is None in every job)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    out = {}
    for name, e in raw["selections"].items():
        jobs = [dict(zip(raw["columns"], row, strict=True)) for row in e["jobs"]]
        out[name] = {"selection": e["selection"], "core": e.get("core", LEGACY_CORE),
                     "jobs": [{c: j.get(c) for c in COLUMNS} for j in jobs]}
    return out


def has_span(entry: dict) -> bool:
    """The selection's records have the accept/result cycles (a step's span can be taken)."""
    return all(j["accept_cycle"] is not None and j["result_cycle"] is not None
               for j in entry["jobs"])


def save(table: dict, path: Path = DATA) -> None:
    """One line per job, columns COLUMNS (the file stays small: about 40 bytes a job; null for
    a column a sequential-core selection does not have)."""
    names = list(table)
    lines = ["{", f' "columns": {json.dumps(list(COLUMNS))},', ' "selections": {']
    for i, name in enumerate(names):
        e = table[name]
        rows = [json.dumps([r.get(c) for c in COLUMNS]) for r in e["jobs"]]
        core = e.get("core", LEGACY_CORE)
        lines.append(f'  {json.dumps(name)}: {{"selection": {json.dumps(e["selection"])}, '
                     f'"core": {json.dumps(core)}, "jobs": [')
        lines.append(",\n".join("   " + r for r in rows))
        lines.append("  ]}" + ("," if i < len(names) - 1 else ""))
    lines += [" }", "}"]
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def collect(names: list[str], out: Path = Path("build/perf-measured")) -> dict:
    from spatten_dv.regress import TestSpec, run_one

    table = load() if DATA.exists() else {}
    for name in names:
        sel = SELECTIONS[name]
        seq = "workload_replay" if "workload" in sel else "trace_replay"
        spec = TestSpec(name=f"perf_{name}", sequences=seq, knobs=dict(KNOBS, **sel),
                        tier="adhoc")
        r = run_one(spec, "verilator", 1, out, progress=False)
        if not r.passed:
            raise SystemExit(f"{name}: RTL run failed: {r.failure} (log {r.folder})")
        table[name] = {"selection": sel, "core": CORE,
                       "jobs": records_of(r.folder / "jobs.jsonl")}
        save(table)
    return table


def markdown(table: dict | None = None) -> list[str]:
    """The agreement table of docs/perf.md, from the committed measurements."""
    table = table or load()
    out = ["| selection | core | step | jobs | compared | RTL cycles | model cycles | error |",
           "|---|---|---|---|---|---|---|---|"]
    for name, e in table.items():
        sel = ", ".join(f"{k} {v}" for k, v in e["selection"].items())
        what = "span" if has_span(e) else "sum of job cycles"
        for step, rtl, model, err in agreement(name, table):
            jobs = sum(1 for r in e["jobs"] if r["step"] == step)
            out.append(f"| {name}: {sel} | {e['core']} | {step} | {jobs} | {what} | {rtl:,} | "
                       f"{model:,.0f} | {err:+.2f} % |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", choices=sorted(SELECTIONS))
    ap.add_argument("--table", action="store_true",
                    help="print the agreement table of the committed measurements, run nothing")
    ap.add_argument("--fit", action="store_true",
                    help="print the span / latency errors of the pipeline's DRAM-sharing "
                    "constants over a grid (the pipelined-core measurements), run nothing")
    args = ap.parse_args()
    if args.table:
        print("\n".join(markdown()))
        return
    if args.fit:
        print("contention v_share  span RMS %  span max %  latency-sum RMS %")
        for c, w, rms, worst, lat in fit_sharing()[:15]:
            print(f"{c:>10.2f} {w:>7.2f} {rms:>11.2f} {worst:>11.2f} {lat:>18.2f}")
        return
    collect(args.only or list(SELECTIONS))


def rtl_step_cycles(jobs: list[dict], span: bool) -> dict[int, int]:
    """Per step: the span (first accept .. last result, inclusive: spatten_dv/bench_figures.py
    step_totals, the figure `spatten-dv bench` reports) or the sum of the jobs' cycles."""
    if span:
        from spatten_dv.bench_figures import step_totals

        return {s: t["span"] for s, t in step_totals(jobs).items()}
    out: dict[int, int] = {}
    for r in jobs:
        out[r["step"]] = out.get(r["step"], 0) + r["cycles"]
    return out


def config_of(entry: dict) -> str:
    """The core configuration a selection was measured on (its `config` knob; `default`)."""
    return entry["selection"].get("config", "default")


def selection_shapes(entry: dict):
    """(model configuration, job shapes) of a measured selection: the selection's configuration
    (`config`: default or paper) on the selection's memory and channels, overlapping for a
    selection measured on the pipelined core."""
    from spatten_dv.models.perf.configs import CONFIGS
    from spatten_dv.models.perf.shape import trace_shapes, workload_shapes

    sel = dict(entry["selection"])
    base = CONFIGS[sel.pop("config", "default")]
    cfg = base.with_(dram=sel.pop("dram", base.dram),
                     channels=int(sel.pop("channels", base.channels)),
                     overlap=entry["core"] == "pipelined")
    if "workload" in sel:
        _, shapes = workload_shapes(sel["workload"], sel.get("steps"), sel.get("layers"))
    else:
        _, shapes = trace_shapes(sel["trace"], sel.get("steps"), sel.get("layers"),
                                 sel.get("heads"))
    if len(entry["jobs"]) != len(shapes):
        raise ValueError(f"{len(entry['jobs'])} measured jobs, the selection has {len(shapes)}")
    return cfg, shapes


def agreement(name: str, table: dict | None = None) -> list[tuple[int, int, float, float]]:
    """(step, RTL cycles, model cycles, error %) per step of a measured selection: spans when
    the records have them, else (a sequential-core selection) sums of the jobs' cycles."""
    from spatten_dv.models.perf.steps import predict

    entry = (table or load())[name]
    span = has_span(entry)
    if not span and entry["core"] != LEGACY_CORE:
        raise ValueError(f"{name}: measured on the {entry['core']} core without accept/result "
                         "cycles: re-measure it (nox -s perf_measure)")
    try:
        cfg, shapes = selection_shapes(entry)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    _, steps = predict(shapes, cfg)
    rtl = rtl_step_cycles(entry["jobs"], span)
    model = {s: (p.cycles if span else p.latency) for s, p in steps.items()}
    return [(s, c, model[s], 100 * (model[s] / c - 1)) for s, c in sorted(rtl.items())]


def fit_sharing(table: dict | None = None,
                contentions=(0.0, 0.05, 0.1, 0.15, 0.2, 0.3),
                shares=(0.3, 0.35, 0.4, 0.45, 0.5, 0.7, 1.0)) -> list[tuple]:
    """Per (contention, v_share) of the pipeline (configs.PipelineTiming): the RMS error % of
    the per-step spans and of the per-step sums of the jobs' latencies over the selections
    measured on the pipelined core of the default configuration (the constants were fitted there;
    `paper` shares them); best spans first. To re-fit after a change of the core's fetch path
    (`python -m spatten_dv.models.perf.measured --fit`)."""
    from dataclasses import replace

    from spatten_dv.models.perf.configs import TIMING
    from spatten_dv.models.perf.steps import predict

    table = table or load()
    cases = [(e, *selection_shapes(e)) for e in table.values()
             if e["core"] == "pipelined" and has_span(e) and config_of(e) == "default"]
    out = []
    for c in contentions:
        for w in shares:
            timing = replace(TIMING, contention=c, v_share=w)
            span_err, lat_err = [], []
            for entry, cfg, shapes in cases:
                _, steps = predict(shapes, cfg.with_(timing=timing))
                spans = rtl_step_cycles(entry["jobs"], True)
                sums = rtl_step_cycles(entry["jobs"], False)
                span_err += [100 * (steps[s].cycles / v - 1) for s, v in spans.items()]
                lat_err += [100 * (steps[s].latency / v - 1) for s, v in sums.items()]
            if span_err:
                out.append((c, w, _rms(span_err), max(map(abs, span_err)), _rms(lat_err)))
    return sorted(out, key=lambda r: r[2])


def _rms(xs: list[float]) -> float:
    return (sum(x * x for x in xs) / len(xs)) ** 0.5


if __name__ == "__main__":
    main()
