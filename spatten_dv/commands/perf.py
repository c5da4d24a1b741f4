"""`spatten-dv perf`: the behavioural performance model (models/perf, docs/perf.md).

Predicts per decode step the cycles, DRAM bytes, bound ratio, stage breakdown and GOP/s of a GPT-2
workload or a trace replay, for the `default` configuration (one key a cycle, DDR4) or `paper`
(SpAtten's widths on HBM2 x 8: the RTL's --config paper), optionally sweeping one parameter
(plot with --plot; a sweep's other points are predictions) or comparing with the RTL's per-job
records (--rtl: a jobs.jsonl of `spatten-dv sim`). A step's cycles are its span (first
descriptor accepted .. last result taken), jobs overlapping on the core's two job stages unless
--no-overlap.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from spatten_dv.errors import UserError

SWEEPS = ("channels", "multipliers", "lanes", "comparators")
# The RTL's stage counters (docs/architecture.md section 9) and the model's stages grouped alike:
# passes (K and V fetch, Q.K, softmax, prob.V), top-k (prunes with their scans, value top-k),
# control (checks, key list, accumulation, result).
RTL_GROUPS = {"passes": ("cyc_fetch_wait", "cyc_qk", "cyc_softmax", "cyc_v"),
              "topk": ("cyc_topk",), "control": ("cyc_ctrl",)}
MODEL_GROUPS = {"passes": ("k_msb", "k_lsb", "v"), "topk": ("prune", "v_select"),
                "control": ("control", "key_scan", "accumulate", "wait")}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("perf", help="performance model: cycles, bytes, GOP/s per decode step",
                       description="Predict cycles and DRAM bytes per job and per decode step of "
                       "a GPT-2 workload or a trace replay from the jobs' shapes (docs/perf.md).")
    p.add_argument("source", metavar="WORKLOAD|TRACE",
                   help="a shipped workload name or CSV, or a committed trace name or file")
    p.add_argument("--config", choices=("default", "paper", "both"), default="default",
                   help="default: the RTL's default core; paper: SpAtten's widths on HBM2 x 8 "
                   "(the RTL's --config paper); both: print both")
    p.add_argument("--dram", help="DRAM preset (DDR4_2400R, DDR4_3200AA, HBM2_2000Mbps) or "
                   "ideal; default: the configuration's")
    p.add_argument("--channels", type=int, help="AXI read channels = DRAM channels")
    p.add_argument("--overlap", action=argparse.BooleanOptionalAction, default=None,
                   help="jobs overlap on the core's two job stages (default: the "
                   "configuration's); --no-overlap: one job at a time (the sequential core)")
    p.add_argument("--steps", help="steps selection: N, A:B (half-open) or a,b")
    p.add_argument("--layers", help="layers selection")
    p.add_argument("--heads", help="heads selection (traces only)")
    p.add_argument("--trace", default="smollm2_prose",
                   help="q/K/V source of a workload (default smollm2_prose, as the simulator)")
    p.add_argument("--sweep", metavar="NAME=V1,V2,...",
                   help=f"vary one parameter: {', '.join(SWEEPS)} (multipliers: Q.K and prob.V "
                   "multipliers, 64 per key/value per cycle)")
    p.add_argument("--plot", type=Path, metavar="FILE",
                   help="with --sweep: plot cycles per step and bound ratio (PNG/SVG/PDF)")
    p.add_argument("--rtl", type=Path, metavar="JOBS_JSONL",
                   help="compare per step with the RTL's records (jobs.jsonl of spatten-dv sim "
                   "on the same selection, or its folder)")
    p.add_argument("--out", type=Path, metavar="FILE", help="write the results as JSON")
    p.set_defaults(func=run)


# ------------------------------------------------------------------------------ inputs

def _is_trace(source: str) -> bool:
    from spatten_dv.verif.sequences.trace_replay import committed_traces

    return source in committed_traces() or source.endswith(".safetensors")


def load_shapes(args) -> tuple[str, list]:
    from spatten_dv.models.perf.shape import trace_shapes, workload_shapes

    if _is_trace(args.source):
        return trace_shapes(args.source, args.steps, args.layers, args.heads)
    if args.heads:
        raise UserError("--heads applies to traces only (a workload's rows give the heads)")
    return workload_shapes(args.source, args.steps, args.layers, trace=args.trace)


def configs(args) -> list:
    from spatten_dv.models.perf.configs import CONFIGS

    names = ("default", "paper") if args.config == "both" else (args.config,)
    out = []
    for name in names:
        cfg = CONFIGS[name]
        if args.dram:
            cfg = cfg.with_(dram=args.dram)
        if args.channels is not None:
            if args.channels not in (1, 2, 4, 8, 16):
                raise UserError(f"--channels {args.channels}: must be 1, 2, 4, 8 or 16")
            cfg = cfg.with_(channels=args.channels)
        if args.overlap is not None:
            cfg = cfg.with_(overlap=args.overlap)
        out.append(cfg)
    return out


def check_dram(name: str) -> None:
    from spatten_dv.models.dram.presets import TIMING_PRESETS

    if name != "ideal" and name not in TIMING_PRESETS:
        raise UserError(f"--dram {name!r}: choose ideal or one of {', '.join(TIMING_PRESETS)}")


def parse_sweep(text: str) -> tuple[str, list[int]]:
    if "=" not in text:
        raise UserError(f"--sweep {text!r}: expected NAME=V1,V2,... (NAME: {', '.join(SWEEPS)})")
    name, values = text.split("=", 1)
    name = name.strip()
    if name not in SWEEPS:
        raise UserError(f"--sweep {name!r}: choose one of {', '.join(SWEEPS)}")
    try:
        vals = [int(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--sweep {text!r}: values must be integers") from None
    if not vals or any(v < 1 for v in vals):
        raise UserError(f"--sweep {text!r}: give one or more positive integers")
    if name == "channels" and any(v not in (1, 2, 4, 8, 16) for v in vals):
        raise UserError(f"--sweep {text!r}: channels must be 1, 2, 4, 8 or 16")
    if name == "multipliers" and any(v % 64 for v in vals):
        raise UserError(f"--sweep {text!r}: multipliers must be multiples of 64 (D = 64)")
    return name, vals


def swept(cfg, name: str, value: int):
    """`cfg` with one parameter changed; a point other than the configuration's own is a
    design-space prediction (no RTL builds it: built False)."""
    if name == "channels":
        if value == cfg.channels:
            return cfg
        if cfg.keys_per_cycle > 1:  # the wide fetcher takes every channel's R beat a cycle
            # (at most KL leave the reorder buffer a cycle)
            return cfg.with_(channels=value, built=False,
                             r_beats_per_cycle=min(value, cfg.keys_per_cycle))
        return cfg.with_(channels=value, built=False)
    if name == "multipliers":
        if value // 64 == cfg.keys_per_cycle == cfg.values_per_cycle:
            return cfg
        return cfg.with_(keys_per_cycle=value // 64, values_per_cycle=value // 64, built=False)
    if name == "lanes":
        return cfg if value == cfg.softmax_lanes else cfg.with_(softmax_lanes=value, built=False)
    if value == cfg.topk_comparators:
        return cfg
    return cfg.with_(topk_comparators=value, built=False)


def rtl_steps(path: Path) -> dict[int, dict]:
    """Per step of a jobs.jsonl: jobs, latency (sum of the jobs' r_cycles), beats, span (first
    accept .. last result, when the records have those cycles: None otherwise)."""
    if path.is_dir():
        found = sorted(path.rglob("jobs.jsonl"))
        if not found:
            raise UserError(f"--rtl {path}: no jobs.jsonl below it")
        path = found[0]
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"--rtl {path}: {exc.strerror or exc}") from None
    steps: dict[int, dict] = {}
    for i, line in enumerate(lines, 1):
        try:
            r = json.loads(line)
            s = steps.setdefault(int(r["step"]), dict(jobs=0, latency=0, beats=0, first=None,
                                                      last=None, span=True))
            s["jobs"] += 1
            s["latency"] += int(r["cycles"])
            s["beats"] += int(r["beats"])
            if "accept_cycle" in r and "result_cycle" in r:
                a, b = int(r["accept_cycle"]), int(r["result_cycle"])
                s["first"] = a if s["first"] is None else min(s["first"], a)
                s["last"] = b if s["last"] is None else max(s["last"], b)
            else:
                s["span"] = False
            for group, counters in RTL_GROUPS.items():  # the RTL's stage counters, if any
                if all(c in r for c in counters):
                    s[group] = s.get(group, 0) + sum(int(r[c]) for c in counters)
        except (ValueError, KeyError, TypeError):
            raise UserError(f"--rtl {path}: line {i} is not a replay job record (step, "
                            "cycles, beats)") from None
    for s in steps.values():
        first, last = s.pop("first"), s.pop("last")
        s["span"] = last - first + 1 if s["span"] else None
    return steps


# ------------------------------------------------------------------------------ output

def _fmt_ratio(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.2f}"


def report(cfg, steps: dict, fit, is_workload: bool) -> tuple[list[str], dict]:
    from spatten_dv.models.perf.stages import STAGES

    flow = ("jobs overlap on two job stages" if cfg.overlap else "one job at a time")
    lines = [f"config {cfg.label}; {flow}",
             f"  DRAM fit: latency {fit.latency:.0f} cycles, {fit.tx_cycles:.3f} cycles per "
             f"{fit.tx_bytes} B transaction, peak {fit.peak_bytes_per_cycle:g} B/cycle"]
    lines.append(f"  {'step':>5} {'jobs':>5} {'keys':>7} {'values':>7} {'DRAM MB':>8} "
                 f"{'cycles':>10} {'job sum':>10} {'bound':>6} {'GOP/s@1GHz':>11}")
    total_c = total_ops = total_b = total_lat = 0
    stage_tot = dict.fromkeys(STAGES + ("wait",), 0.0)
    for s in steps.values():
        lines.append(f"  {s.step:>5} {s.jobs:>5} {s.keys:>7} {s.values:>7} {s.bytes / 1e6:>8.3f} "
                     f"{s.cycles:>10.0f} {s.latency:>10.0f} "
                     f"{_fmt_ratio(s.bound_ratio(fit.peak_bytes_per_cycle)):>6} "
                     f"{s.gops_at_1ghz:>11.2f}")
        total_c += s.cycles
        total_lat += s.latency
        total_ops += s.ops
        total_b += s.bytes
        for k, v in s.stages.items():
            stage_tot[k] += v
    n = max(len(steps), 1)
    share = ", ".join(f"{k} {100 * v / total_lat:.1f}%" for k, v in stage_tot.items()
                      if v and total_lat)
    lines.append("  cycles: a step's span (first accept .. last result); job sum: the sum of its "
                 "jobs' latencies (cycles fields)")
    lines.append(f"  stages (share of the jobs' latencies): {share}")
    per = "generated token" if is_workload else "decode step"
    gops = total_ops / total_c if total_c else 0.0
    bound = (total_c / (total_b / fit.peak_bytes_per_cycle)
             if total_b and fit.peak_bytes_per_cycle != float("inf") else float("nan"))
    lines.append(f"  cycles per {per}: {total_c / n:.0f} (mean of {len(steps)} step(s)); "
                 f"{1e9 / (total_c / n) if total_c else 0:.0f} {per}s/s at 1 GHz; "
                 f"GOP/s at 1 GHz: {gops:.2f}; bound ratio {_fmt_ratio(bound)}")
    summary = {"config": cfg.name, "label": cfg.label, "dram": cfg.dram,
               "channels": cfg.channels, "predicted_rtl": cfg.built,
               "fit": {"latency": fit.latency, "tx_cycles": fit.tx_cycles,
                       "tx_bytes": fit.tx_bytes, "peak_bytes_per_cycle": fit.peak_bytes_per_cycle},
               "overlap": cfg.overlap,
               "cycles_per_step": total_c / n, "gops_at_1ghz": gops,
               "bound_ratio": None if math.isnan(bound) else bound,
               "stages": stage_tot,
               "steps": {str(s.step): {"jobs": s.jobs, "keys": s.keys, "values": s.values,
                                       "bytes": s.bytes, "cycles": s.cycles,
                                       "job_cycles_sum": s.latency, "ops": s.ops}
                         for s in steps.values()}}
    return lines, summary


def plot_sweep(path: Path, name: str, points: list[tuple[int, float, float]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [p[0] for p in points]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(xs, [p[1] for p in points], "o-", color="tab:blue")
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel(name)
    ax.set_ylabel("cycles per step", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(xs, [p[2] for p in points], "s--", color="tab:red")
    ax2.set_ylabel("bound ratio (cycles / DRAM-peak cycles)", color="tab:red")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    try:
        fig.savefig(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"--plot {path}: {exc}") from None
    finally:
        plt.close(fig)


def run(args: argparse.Namespace) -> int:
    from spatten_dv.models.perf.steps import fit_for, predict

    if args.dram:
        check_dram(args.dram)
    sweep = parse_sweep(args.sweep) if args.sweep else None
    if args.plot and not sweep:
        raise UserError("--plot needs --sweep")
    cfgs = configs(args)
    rtl = rtl_steps(args.rtl) if args.rtl else None
    t0 = time.perf_counter()
    desc, shapes = load_shapes(args)
    t_shape = time.perf_counter() - t0
    is_workload = not _is_trace(args.source)
    print(f"perf: {desc}: {len(shapes)} jobs (shapes from the reference model in "
          f"{t_shape:.1f} s)")
    out: dict = {"source": desc, "jobs": len(shapes), "configs": []}
    for cfg in cfgs:
        t1 = time.perf_counter()
        fit = fit_for(cfg)  # calibrated once per DRAM preset and channel count
        t_fit = time.perf_counter() - t1
        t1 = time.perf_counter()
        jobs, steps = predict(shapes, cfg)
        t_model = time.perf_counter() - t1
        lines, summary = report(cfg, steps, fit, is_workload)
        print("\n".join(lines))
        print(f"  model time: {1e3 * t_model / max(len(jobs), 1):.2f} ms per job (DRAM "
              f"calibration {t_fit:.1f} s, once per preset and channel count)")
        if rtl is not None:
            print(f"  vs RTL ({args.rtl}): {'step':>5} {'RTL cycles':>11} {'model':>11} "
                  f"{'error':>7} (span: first accept .. last result; job sum: records "
                  "without accept/result cycles)")
            agreement = {}
            for k, s in steps.items():
                if k not in rtl:
                    continue
                r = rtl[k]
                if r["jobs"] != s.jobs:
                    raise UserError(f"--rtl: step {k} has {r['jobs']} RTL jobs, the selection "
                                    f"{s.jobs}: run perf on the same steps/layers/heads")
                # the span when the records have accept/result cycles, else the jobs' sum
                what, rc, mc = (("span", r["span"], s.cycles) if r["span"] is not None
                                else ("job sum", r["latency"], s.latency))
                err = 100 * (mc / rc - 1)
                agreement[str(k)] = {"compared": what, "rtl": rc, "model": mc,
                                     "error_pct": err}
                groups = {g: (r[g], sum(s.stages[m] for m in MODEL_GROUPS[g]))
                          for g in RTL_GROUPS if g in r}
                if groups:
                    agreement[str(k)]["stages_rtl_model"] = groups
                split = "; ".join(f"{g} {a} / {b:.0f}" for g, (a, b) in groups.items())
                print(f"  {'':>{len(str(args.rtl)) + 11}}{k:>5} {rc:>11} "
                      f"{mc:>11.0f} {err:>+6.2f}% ({what})" + (
                          f"   stages RTL / model: {split}" if split else ""))
            summary["rtl_agreement"] = agreement
        if sweep:
            name, vals = sweep
            points = []
            print(f"  sweep {name}: {'value':>6} {'cycles/step':>12} {'bound':>6} "
                  f"{'GOP/s@1GHz':>11}")
            for v in vals:
                c = swept(cfg, name, v)
                _, st = predict(shapes, c)
                f = fit_for(c)
                cyc = sum(s.cycles for s in st.values()) / max(len(st), 1)
                byt = sum(s.bytes for s in st.values()) / max(len(st), 1)
                ops = sum(s.ops for s in st.values()) / max(len(st), 1)
                bound = (cyc / (byt / f.peak_bytes_per_cycle)
                         if byt and f.peak_bytes_per_cycle != float("inf") else float("nan"))
                points.append((v, cyc, bound))
                print(f"  {'':>12}{v:>6} {cyc:>12.0f} {_fmt_ratio(bound):>6} "
                      f"{ops / cyc if cyc else 0:>11.2f}")
            summary["sweep"] = {"parameter": name,
                                "points": [{"value": v, "cycles_per_step": c,
                                            "bound_ratio": None if math.isnan(b) else b}
                                           for v, c, b in points]}
            if args.plot:
                plot_sweep(args.plot, name, points, f"{desc}\n{cfg.name} config (other "
                           f"{name} than {cfg.name}'s: predictions, no RTL)")
                print(f"  plot: {args.plot}")
        out["configs"].append(summary)
    if args.out:
        try:
            args.out.write_text(json.dumps(out, indent=1))
        except OSError as exc:
            raise UserError(f"--out {args.out}: {exc.strerror or exc}") from None
        print(f"perf: results in {args.out}")
    return 0
