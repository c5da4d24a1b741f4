"""`spatten-dv dram`: run traces through the DRAM timing model, benchmark it, validate it.

* `dram run`: one trace file (Ramulator LD/ST format, plain or gzip) on a built-in preset or a
  Ramulator 2.1 YAML export; prints the statistics (one JSON object with --json).
* `dram bench`: requests/s and simulated cycles/s of the model on the reference traces.
* `dram validate`: every Ramulator 2.1 reference row, with the issue's bounds; exit 1 if a row
  is out of bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from spatten_dv.commands import show_usage
from spatten_dv.errors import UserError

_REFRESH = {"allbank": "AllBank", "none": "NoRefresh", "norefresh": "NoRefresh"}
_ROW_POLICY = {"open": "Open", "closed": "ClosedCAP", "closedcap": "ClosedCAP"}
_SCHEDULER = {"frfcfs": "FRFCFS", "fcfs": "FCFS"}
_MAPPER = {"robaracoch": "RoBaRaCoCh", "chrabaroco": "ChRaBaRoCo", "mop4clxor": "MOP4CLXOR"}
_STANDARD = {"ddr4": "DDR4", "hbm2": "HBM2"}

# Options that describe the memory system; --config replaces all of them.
_PRESET_OPTIONS = ("standard", "preset", "org", "refresh", "row_policy", "cap", "mapper",
                   "scheduler", "channels")


def _choice(table: dict[str, str], what: str):
    def parse(text: str) -> str:
        try:
            return table[text.lower()]
        except KeyError:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {text!r} (choose from {', '.join(sorted(set(table.values())))})"
            ) from None
    parse.__name__ = what
    return parse


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("dram", help="DRAM timing model (Ramulator 2 style)",
                            description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.set_defaults(func=show_usage(parser))
    commands = parser.add_subparsers(dest="dram_command", metavar="SUBCOMMAND")

    run = commands.add_parser("run", help="run a trace file and print its statistics")
    run.add_argument("--trace", required=True, type=Path,
                     help="trace file: 'LD 0xADDR' / 'ST 0xADDR' per line, plain or gzip")
    source = run.add_argument_group("memory system (a Ramulator YAML, or the built-in presets)")
    source.add_argument("--config", type=Path,
                        help="fully resolved Ramulator 2.1 YAML (python -m ramulator export)")
    source.add_argument("--standard", type=_choice(_STANDARD, "standard"),
                        help="DDR4 or HBM2 (default: DDR4, or the preset's standard)")
    source.add_argument("--preset", help="timing preset: DDR4_2400R, DDR4_3200AA, "
                                         "HBM2_2000Mbps (default: the standard's first)")
    source.add_argument("--org", help="organisation preset (default: DDR4_8Gb_x8 / HBM2_8Gb)")
    source.add_argument("--refresh", type=_choice(_REFRESH, "refresh"),
                        help="allbank (default) or none")
    source.add_argument("--row-policy", type=_choice(_ROW_POLICY, "row policy"),
                        help="open (default) or closed (close after --cap column accesses)")
    source.add_argument("--cap", type=_positive_int,
                        help="closed row policy: column accesses per activation (default 4)")
    source.add_argument("--mapper", type=_choice(_MAPPER, "address mapper"),
                        help="RoBaRaCoCh (default), ChRaBaRoCo or MOP4CLXOR")
    source.add_argument("--scheduler", type=_choice(_SCHEDULER, "scheduler"),
                        help="frfcfs (default) or fcfs")
    source.add_argument("--channels", type=_positive_int,
                        help="number of channels, a power of two (default 1)")
    run.add_argument("--arrival", choices=("one_per_cycle", "all_at_0"), default="one_per_cycle",
                     help="one_per_cycle: offer the next request every cycle (Ramulator's "
                          "LoadStoreTrace); all_at_0: everything available at cycle 0")
    run.add_argument("--ideal", type=_positive_int, metavar="LATENCY",
                     help="use a fixed-latency ideal memory instead (reads take LATENCY cycles)")
    run.add_argument("--per-request", type=Path, metavar="CSV",
                     help="also write idx,arrive,depart per trace line to CSV")
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.set_defaults(func=cmd_run)

    bench = commands.add_parser("bench", help="requests/s and cycles/s on the reference traces")
    bench.add_argument("--trace", action="append", dest="traces", metavar="NAME",
                       help="reference trace name (repeatable; default: all eight)")
    bench.add_argument("--standard", type=_choice(_STANDARD, "standard"), action="append",
                       dest="standards", help="DDR4 and/or HBM2 (default: both)")
    bench.add_argument("--refresh", type=_choice(_REFRESH, "refresh"), default="AllBank")
    bench.add_argument("--repeat", type=_positive_int, default=1,
                       help="runs per trace; the best is reported")
    bench.add_argument("--json", action="store_true")
    bench.set_defaults(func=cmd_bench)

    validate = commands.add_parser(
        "validate", help="compare with every Ramulator 2.1 reference row")
    validate.add_argument("--filter", action="append", default=[], metavar="TEXT",
                          help="only rows whose trace/standard/refresh/policy/arrival label "
                               "contains TEXT (repeatable: all must match)")
    validate.add_argument("--jobs", type=_positive_int, default=os.cpu_count() or 1,
                          help="parallel processes (default: all cores)")
    validate.add_argument("--ramulator-configs", action="store_true",
                          help="configure from the rows' Ramulator YAML files, not our presets")
    validate.add_argument("--json", action="store_true")
    validate.set_defaults(func=cmd_validate)


# ---- dram run -----------------------------------------------------------------------------

def _config_from_args(args):
    from spatten_dv.models.dram import ramulator_config
    from spatten_dv.models.dram.config import ConfigError, SystemConfig
    from spatten_dv.models.dram.presets import TIMING_PRESETS

    given = [name for name in _PRESET_OPTIONS if getattr(args, name) is not None]
    if args.config is not None:
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise UserError(f"--config takes the whole memory system from {args.config}; "
                            f"drop {flags}")
        try:
            return ramulator_config.load(args.config)
        except ConfigError as exc:
            raise UserError(str(exc)) from None
    standard = args.standard
    preset = args.preset
    if preset is not None:
        if preset not in TIMING_PRESETS:
            raise UserError(f"unknown --preset {preset!r}; known: {', '.join(TIMING_PRESETS)}")
        if standard is None:
            standard = TIMING_PRESETS[preset].standard
        elif TIMING_PRESETS[preset].standard != standard:
            raise UserError(f"--preset {preset} is a {TIMING_PRESETS[preset].standard} preset, "
                            f"but --standard is {standard}")
    standard = standard or "DDR4"
    preset = preset or {"DDR4": "DDR4_2400R", "HBM2": "HBM2_2000Mbps"}[standard]
    if args.cap is not None and args.row_policy != "ClosedCAP":
        raise UserError("--cap only applies to --row-policy closed")
    fields = {"refresh": args.refresh or "AllBank", "row_policy": args.row_policy or "Open",
              "mapper": args.mapper or "RoBaRaCoCh", "scheduler": args.scheduler or "FRFCFS"}
    if args.cap is not None:
        fields["row_policy_cap"] = args.cap
    try:
        return SystemConfig.from_presets(standard, preset, org=args.org,
                                         channels=args.channels or 1, **fields)
    except ConfigError as exc:
        raise UserError(str(exc)) from None


def _progress_bar(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="req", file=sys.stderr, leave=False)


def _describe(config) -> dict:
    c = config.controller
    return {
        "standard": config.dram.standard.name,
        "preset": config.dram.preset_name,
        "channels": config.channels,
        "controller": c.controller,
        "scheduler": c.scheduler,
        "refresh": c.refresh,
        "row_policy": c.row_policy if c.row_policy != "ClosedCAP"
        else f"ClosedCAP(cap={c.row_policy_cap})",
        "mapper": c.mapper,
    }


def cmd_run(args: argparse.Namespace) -> int:
    from spatten_dv.models.dram import IdealMemory, MemorySystem, TraceError, read_trace

    if args.ideal is not None:
        given = [name for name in _PRESET_OPTIONS if getattr(args, name) is not None]
        if args.config is not None or given:
            raise UserError("--ideal replaces the DRAM model; drop --config and the preset "
                            "options")
    if args.ideal is not None:
        memory = IdealMemory(read_latency=args.ideal)
        description = {"model": f"ideal, {args.ideal}-cycle reads"}
    else:
        config = _config_from_args(args)  # option mistakes first, before reading the trace
        memory = MemorySystem(config)
        description = _describe(config)
    try:
        trace = read_trace(args.trace)
    except TraceError as exc:
        raise UserError(str(exc)) from None
    bar = _progress_bar(len(trace), not args.json and sys.stderr.isatty(), trace.name)
    try:
        result = memory.run_trace(trace, args.arrival, bar.update if bar else None)
    finally:
        if bar:
            bar.close()
    stats = result.stats
    if args.per_request is not None:
        _write_per_request(args.per_request, result)

    if args.json:
        out = {"trace": str(args.trace), "requests": len(trace), "arrival": args.arrival,
               **description, **stats.to_dict()}
        print(json.dumps(out))
        return 0
    print(f"trace         {args.trace} ({len(trace)} requests: {trace.reads} reads, "
          f"{trace.writes} writes), arrival {args.arrival}")
    print("memory        " + ", ".join(f"{k} {v}" for k, v in description.items()))
    print(f"cycles        {stats.cycles} ({stats.time_ns / 1000:.3f} us at tCK "
          f"{stats.tCK_ns:g} ns); last request accepted at cycle {stats.cycles_last_accept}")
    print(f"requests      {stats.reads} reads, {stats.writes} writes")
    print(f"row buffer    {stats.row_hits} hits, {stats.row_misses} misses, "
          f"{stats.row_conflicts} conflicts")
    print(f"read latency  mean {stats.avg_read_latency:.2f} cycles, "
          f"p50 {stats.latency_percentile(0.5)}, p99 {stats.latency_percentile(0.99)}, "
          f"max {max(stats.read_latencies, default=0)}")
    print(f"bandwidth     {stats.bandwidth_GBps:.3f} GB/s ({stats.bytes_transferred} bytes)")
    print(f"queues        average length: read {stats.queue_average('read'):.2f}, "
          f"write {stats.queue_average('write'):.2f}, "
          f"priority {stats.queue_average('priority'):.2f}")
    histogram = stats.latency_histogram(_histogram_width(stats))
    if histogram:
        peak = max(n for _, _, n in histogram) or 1
        print("read latency histogram (cycles: reads)")
        for low, high, n in histogram:
            print(f"  {low:6d}-{high - 1:<6d} {n:8d} {'#' * round(40 * n / peak)}")
    return 0


def _histogram_width(stats) -> int:
    latencies = stats.read_latencies
    if not latencies:
        return 1
    span = max(latencies) - min(latencies) + 1
    width = 1
    while span / width > 20:
        width *= 2
    return width


def _write_per_request(path: Path, result) -> None:
    try:
        with open(path, "w") as f:
            f.write("idx,arrive,depart\n")
            for i, (a, d) in enumerate(zip(result.arrive.tolist(), result.depart.tolist(),
                                           strict=True)):
                f.write(f"{i},{a},{d}\n")
    except OSError as exc:
        raise UserError(f"{path}: cannot write: {exc.strerror}") from None


# ---- dram bench ---------------------------------------------------------------------------

def cmd_bench(args: argparse.Namespace) -> int:
    from spatten_dv.models.dram.bench import bench, ramulator_requests_per_s
    from spatten_dv.models.dram.validation import trace_names

    known = trace_names()
    for name in args.traces or []:
        if name not in known:
            raise UserError(f"unknown reference trace {name!r}; known: {', '.join(known)}")
    standards = tuple(dict.fromkeys(args.standards or ["DDR4", "HBM2"]))

    def show(r) -> None:
        if not args.json:
            print(f"{r.trace:<18} {r.standard:<5} {r.requests:>8} {r.cycles:>9} "
                  f"{r.seconds:>8.3f} {r.requests_per_s:>11.0f} {r.cycles_per_s:>12.0f}",
                  flush=True)

    if not args.json:
        print(f"{'trace':<18} {'std':<5} {'requests':>8} {'cycles':>9} {'seconds':>8} "
              f"{'requests/s':>11} {'cycles/s':>12}")
    results = bench(args.traces, standards, args.refresh, args.repeat, show)
    total_requests = sum(r.requests for r in results)
    total_seconds = sum(r.seconds for r in results)
    ramulator = ramulator_requests_per_s()
    rand = [r for r in results if r.trace == "rand_1GiB" and r.standard == "DDR4"]
    if args.json:
        print(json.dumps({
            "refresh": args.refresh,
            "results": [{"trace": r.trace, "standard": r.standard, "preset": r.preset,
                         "requests": r.requests, "cycles": r.cycles, "seconds": r.seconds,
                         "requests_per_s": r.requests_per_s, "cycles_per_s": r.cycles_per_s}
                        for r in results],
            "total_requests_per_s": total_requests / total_seconds,
            "ramulator_rand_ddr4_requests_per_s": ramulator,
        }))
        return 0
    print(f"overall: {total_requests / total_seconds:.0f} requests/s "
          f"({total_requests} requests in {total_seconds:.2f} s, one core)")
    if rand:
        r = rand[0]
        print(f"rand_1GiB DDR4: {r.requests_per_s:.0f} requests/s = "
              f"{100 * r.requests_per_s / ramulator:.1f} % of Ramulator 2's ~{ramulator:.0f} "
              f"requests/s (target >= 10 %)")
    return 0


# ---- dram validate ------------------------------------------------------------------------

def cmd_validate(args: argparse.Namespace) -> int:
    from spatten_dv.models.dram import validation

    rows = [r for r in validation.load_rows() if all(f in r.label for f in args.filter)]
    if not rows:
        raise UserError(f"no reference row matches {' and '.join(map(repr, args.filter))}; "
                        "labels look like rand_1GiB/DDR4/NoRefresh/Open/one_per_cycle")
    bar = _progress_bar(len(rows), not args.json and sys.stderr.isatty(), "rows")
    bar_unit = (lambda _r: bar.update(1)) if bar else None
    try:
        results = validation.compare_rows(rows, workers=args.jobs,
                                          use_ramulator_config=args.ramulator_configs,
                                          on_result=bar_unit)
    finally:
        if bar:
            bar.close()
    summary = validation.summary(results)
    if args.json:
        print(json.dumps({
            "summary": summary,
            "rows": [{"label": r.row.label, "cycles": r.stats.cycles,
                      "ref_cycles": r.row.cycles, "cycle_error_pct": r.cycle_error_pct,
                      "row_stat_errors_pct": r.row_stat_errors_pct,
                      "latency_error_pct": r.latency_error_pct,
                      "exact_depart_share": r.exact_depart_share,
                      "within_bounds": r.within_bounds} for r in results],
        }))
    else:
        print(validation.format_table(results))
        share = summary["exact_depart_share_no_refresh"]
        share_ref = summary["exact_depart_share_refresh"]
        print(f"\n{summary['rows_within_bounds']}/{summary['rows']} rows within bounds "
              f"({summary['rows_exact']} exact); worst errors: cycles "
              f"{summary['worst_cycle_error_pct']:.3f} %, row stats "
              f"{summary['worst_row_stat_error_pct']:.3f} %, latency "
              f"{summary['worst_latency_error_pct']:.3f} %")
        if share is not None or share_ref is not None:
            print("exact depart cycles (worst row): "
                  + (f"no-refresh {100 * share:.2f} %" if share is not None else "")
                  + (f", refresh {100 * share_ref:.2f} %" if share_ref is not None else ""))
        print(f"{summary['requests']} requests simulated at "
              f"{summary['requests_per_s']:.0f} requests/s per process")
    return 0 if summary["rows_within_bounds"] == summary["rows"] else 1
