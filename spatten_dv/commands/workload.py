"""`spatten-dv workload`: the GPT-2 workload summaries published with SpAtten.

* `workload list`: the shipped workloads (traces/workloads/).
* `workload info CSV`: validate a workload CSV and print its summary.
* `workload replay CSV --trace T | --synthetic SEED`: build the core's jobs, run them through
  SpAttenCoreModel and check, row by row, that they fetch what the CSV says. Exit 0 when every
  row matches, 1 when one does not, 2 on bad input.

CSV is a path or the name of a shipped workload. docs/workloads.md has the details.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from spatten_dv.commands import show_usage


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("workload", help="GPT-2 workload summaries: inspect, replay on the "
                            "core model")
    wsub = parser.add_subparsers(dest="workload_command", metavar="SUBCOMMAND")

    ls = wsub.add_parser("list", help="list the shipped workloads")
    ls.set_defaults(func=run_list)

    info = wsub.add_parser("info", help="validate a workload CSV and print its summary")
    info.add_argument("csv", help="workload CSV (.csv or .csv.gz) or a shipped workload's name")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    info.add_argument("--allow-no-trailer", action="store_true",
                      help="accept a file without the config trailer line")
    info.set_defaults(func=run_info)

    rp = wsub.add_parser("replay", help="convert a workload into core jobs, run them through "
                         "the reference model and check them against the CSV")
    rp.add_argument("csv", help="workload CSV (.csv or .csv.gz) or a shipped workload's name")
    data = rp.add_mutually_exclusive_group(required=True)
    data.add_argument("--trace", type=Path, metavar="T",
                      help="take q/K/V from this trace (.safetensors, traces/README.md)")
    data.add_argument("--synthetic", type=int, metavar="SEED",
                      help="use SYNTHETIC seeded Gaussian q/K/V instead of a trace")
    rp.add_argument("--steps", metavar="SEL", help="steps to replay: N, A:B (half-open) or a "
                    "comma list; default all")
    rp.add_argument("--layers", metavar="SEL", help="layers to replay, as --steps")
    rp.add_argument("--head-pruning", choices=("keep", "omit"), default="keep",
                    help="keep: drive the core's head pruning with head_keep where exact "
                    "(default); omit: only leave out the jobs of absent heads")
    rp.add_argument("--rescale-shift", type=int, default=None, metavar="N",
                    help="imp_shift after a row marked if_rescale_previous_importance "
                         "(default 1; 0 = no rescale)")
    rp.add_argument("--protect", metavar="S,W", default=None,
                    help="keep the first S and the newest W tokens at every token prune "
                         "(protect_sink, protect_recent; default 0,0)")
    rp.add_argument("--out", type=Path, metavar="JOBS.jsonl",
                    help="write the job descriptors as JSON lines")
    rp.add_argument("--json", action="store_true", help="print the report as JSON")
    rp.add_argument("--no-progress", action="store_true", help="no progress bar")
    rp.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    rp.add_argument("--allow-no-trailer", action="store_true",
                    help="accept a file without the config trailer line")
    rp.set_defaults(func=run_replay)
    parser.set_defaults(func=show_usage(parser))


def _load(args: argparse.Namespace):
    from spatten_dv.traces.workload import load_workload, resolve_workload

    return load_workload(resolve_workload(args.csv),
                         require_trailer=not args.allow_no_trailer)


def run_list(args: argparse.Namespace) -> int:
    from spatten_dv.traces.workload import load_workload, shipped_workloads

    for path in shipped_workloads():
        wl = load_workload(path)
        print(f"{wl.name:<80} {wl.model or '?':<12} {wl.dataset or '?':<10} "
              f"{len(wl.rows):>6} rows")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from spatten_dv.traces.workload import format_summary, summarize

    s = summarize(_load(args))
    print(json.dumps(s, indent=1) if args.json else format_summary(s))
    return 0


def _source(args: argparse.Namespace, wl):
    from spatten_dv.traces.workload import SyntheticSource, TraceSource

    if args.trace is not None:
        from spatten_dv.traces.loader import load_trace

        return TraceSource(load_trace(args.trace), args.trace)
    return SyntheticSource(args.synthetic, n_heads=wl.n_heads)


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f}"


def format_report(rep, elapsed: float) -> str:
    p, wl, t = rep.plan, rep.plan.workload, rep.total
    lines = [
        f"workload   {wl.name} ({wl.model or 'unknown model'}, {wl.dataset or '?'}; "
        f"{len(p.jobs)} of {len(wl.rows)} rows)",
        f"data       {p.source_label}",
        f"jobs       {len(p.jobs)}, head pruning '{p.head_pruning}', run through "
        f"SpAttenCoreModel in {elapsed:.1f} s",
    ]
    lines += [f"note       {n}" for n in p.notes]
    lines.append(f"{'step':>5} {'rows':>5} {'L':>9} {'keys':>8} {'keys%':>6} {'values':>8} "
                 f"{'val%':>6} {'LSB':>4} {'MB read':>8} {'dense MB':>8} {'beats':>8}")

    def row(label: str, s) -> str:
        length = str(s.n_tokens_min) if s.n_tokens_min == s.n_tokens_max else \
            f"{s.n_tokens_min}-{s.n_tokens_max}"
        return (f"{label:>5} {s.rows:>5} {length:>9} {s.keys:>8} "
                f"{100 * s.keys / s.dense_keys:>6.2f} {s.values:>8} "
                f"{100 * s.values / s.dense_keys:>6.2f} {s.lsb_refetches:>4} {_mb(s.bytes):>8} "
                f"{_mb(s.dense_bytes):>8} {s.beats:>8}")

    for step, s in sorted(rep.steps.items()):
        lines.append(row(str(step), s))
    lines.append(row("total", t))
    lines.append(f"bytes      K MSB {t.bytes_k_msb}, K LSB {t.bytes_k_lsb}, V {t.bytes_v}: "
                 f"{t.bytes} = {100 * t.bytes / t.dense_bytes:.2f} % of a dense 12-bit fetch "
                 f"({t.dense_bytes})")
    if rep.ok:
        lines.append(f"check      all {t.rows} rows match the CSV (keys, values, LSB refetch, "
                     "plane widths): OK")
    else:
        lines.append(f"check      {t.mismatched_rows} of {t.rows} rows DIFFER from the CSV:")
        lines += [f"  {m}" for m in rep.mismatches]
    return "\n".join(lines)


def reselect_options(args: argparse.Namespace) -> dict:
    """build_jobs keywords from --rescale-shift and --protect (one-line errors)."""
    from spatten_dv.errors import UserError

    opts: dict = {}
    if args.rescale_shift is not None:
        opts["rescale_shift"] = args.rescale_shift
    if args.protect is not None:
        try:
            sink, recent = (int(x) for x in args.protect.split(","))
        except ValueError:
            raise UserError(f"--protect {args.protect!r}: expected S,W (two token counts)") \
                from None
        opts["protect"] = (sink, recent)
    return opts


def run_replay(args: argparse.Namespace) -> int:
    from spatten_dv.errors import UserError
    from spatten_dv.torch_threads import torch_threads

    if args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    with torch_threads(args.threads):
        return _replay(args)


def _replay(args: argparse.Namespace) -> int:
    from spatten_dv.errors import UserError
    from spatten_dv.traces.workload import (
        build_jobs,
        parse_selection,
        replay,
        write_jobs_jsonl,
    )

    steps = parse_selection(args.steps, "steps")
    layers = parse_selection(args.layers, "layers")
    wl = _load(args)
    plan = build_jobs(wl, _source(args, wl), steps=steps, layers=layers,
                      head_pruning=args.head_pruning, **reselect_options(args))
    if args.out is not None:
        try:
            with open(args.out, "w", encoding="utf-8") as f:
                n = write_jobs_jsonl(plan, f)
        except OSError as exc:
            raise UserError(f"cannot write {args.out}: {exc.strerror or exc}") from None
        print(f"wrote {n} job descriptors to {args.out}", file=sys.stderr)
    t0 = time.perf_counter()
    rep = replay(plan, progress=False if args.no_progress else None)
    elapsed = time.perf_counter() - t0
    if args.json:
        d = rep.as_dict()
        d["elapsed_s"] = round(elapsed, 3)
        print(json.dumps(d, indent=1))
    else:
        print(format_report(rep, elapsed))
    return 0 if rep.ok else 1
