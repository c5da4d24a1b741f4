"""`spatten-dv sim`: the pyuvm environment's regression (the product's main job).

With no arguments: the smoke tier on Verilator (`nox -s sim`). Tests come from ci/tiers.yaml
(`--tier`, `--test`), or one ad-hoc test from `--sequence` / `--trace FILE` / `--workload W`
with knobs from the options and `--knob name=value`. Every input is checked before anything is
built (exit 2, one line). Prints one line per test (jobs, cycles, DRAM bytes, cycles/s,
functional coverage, wall time) and writes junit.xml and regression.json as tests finish.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from spatten_dv.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="run the verification environment's regression (smoke "
                       "tier on Verilator by default)",
                       description="Run tests of the pyuvm environment on the RTL core behind "
                       "the DRAM timing model; every job is checked bit for bit against the "
                       "reference model.")
    p.add_argument("--tier", choices=("smoke", "full", "nightly"), default=None,
                   help="tests of this tier from ci/tiers.yaml (default smoke)")
    p.add_argument("--test", action="append", default=[], metavar="NAME",
                   help="only this test of the tier list (repeatable; a split test's name, "
                   "e.g. trace_prose, selects all its parts)")
    p.add_argument("--sequence", metavar="S[,S...]",
                   help="an ad-hoc test running these sequences (see --list)")
    p.add_argument("--trace", type=Path, metavar="FILE",
                   help="trace file (or committed name) for trace/workload replay; alone: an "
                   "ad-hoc trace_replay test of that trace")
    p.add_argument("--workload", metavar="W",
                   help="GPT-2 workload (shipped name or CSV); alone: an ad-hoc workload_replay")
    p.add_argument("--steps", help="steps selection for replays: N, A:B, a,b")
    p.add_argument("--layers", help="layers selection for replays")
    p.add_argument("--heads", help="heads selection for trace replay")
    p.add_argument("--dram", help="DDR4_2400R (default), DDR4_3200AA, HBM2_2000Mbps or ideal")
    p.add_argument("--channels", type=int, help="AXI read channels = DRAM channels: 1, 2, 4, 8")
    p.add_argument("--config", help="core configuration to build and check: default, small, "
                   "paper (models/params.py CONFIGURATIONS; docs/architecture.md section 1.1); "
                   "paper brings dram=HBM2_2000Mbps and 8 channels unless given")
    p.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE",
                   help="any environment knob (verif/config.py), repeatable")
    p.add_argument("--simulator", choices=("verilator", "icarus", "both"),
                   default=os.environ.get("SIM") or "verilator",
                   help="default: $SIM or verilator")
    p.add_argument("--seed", type=int, help="seed of every test run (default: random, printed)")
    p.add_argument("--out", type=Path, default=Path("build/sim"),
                   help="results folder (default build/sim)")
    p.add_argument("--waves", action="store_true", default=os.environ.get("WAVES") == "1",
                   help="write waveforms (also WAVES=1)")
    p.add_argument("--code-coverage", action="store_true",
                   help="Verilator builds with line + toggle coverage (coverage.dat per test; "
                   "report with spatten-dv coverage --from OUT)")
    p.add_argument("--debug-build", action="store_true",
                   help="Verilator with the default flags (X values kept unique, -Os) instead "
                   "of the speed build (-O3, X resolved for speed, -O2); waves and coverage "
                   "builds always use the default flags")
    p.add_argument("-j", "--jobs", type=int, default=1,
                   help="test runs at a time, each its own simulator process (default 1)")
    p.add_argument("--list", action="store_true", help="list tiers, tests and sequences")
    p.set_defaults(func=run)


def _knobs(args) -> dict:
    knobs = {}
    for kv in args.knob:
        if "=" not in kv:
            raise UserError(f"--knob {kv!r}: expected NAME=VALUE")
        k, v = kv.split("=", 1)
        knobs[k.strip()] = v.strip()
    for name in ("steps", "layers", "heads", "dram", "channels", "workload", "config"):
        v = getattr(args, name)
        if v is not None:
            knobs[name] = v
    if args.trace is not None:
        knobs["trace"] = str(args.trace)
    return knobs


def _check_inputs(knobs: dict, specs) -> None:
    """Everything a run can reject, checked before any build: one line, exit 2."""
    from spatten_dv.verif.config import ConfigError, EnvConfig

    for spec in specs:
        merged = dict(spec.knobs, **knobs)
        try:
            cfg = EnvConfig.resolve(environ={}, spec=dict(merged, sequences=spec.sequences))
        except ConfigError as exc:
            raise UserError(f"test {spec.name}: {exc}") from None
        from spatten_dv.traces.loader import load_trace
        from spatten_dv.traces.workload import load_workload, parse_selection, resolve_workload
        from spatten_dv.verif.sequences.trace_replay import resolve_trace, select

        if "trace_replay" in spec.sequences or "workload_replay" in spec.sequences:
            tr = load_trace(resolve_trace(str(merged.get("trace", "smollm2_prose"))))
            params = cfg.params
            if tr.meta.head_dim != params.head_dim:
                raise UserError(f"test {spec.name}: the trace has head_dim {tr.meta.head_dim}, "
                                f"configuration {merged.get('config', 'default')} has D = "
                                f"{params.head_dim}")
            if "trace_replay" in spec.sequences:  # selections within the trace's range
                m = tr.meta
                for what, count in (("steps", m.n_steps), ("layers", m.n_layers),
                                    ("heads", m.n_heads)):
                    select(str(merged.get(what, "")), count, what)
        if "workload_replay" in spec.sequences:
            wl = load_workload(resolve_workload(merged.get("workload",
                                                           "summary-gpt2-small-wikitext2-per8")))
            steps = parse_selection(str(merged.get("steps", "")) or None, "steps")
            layers = parse_selection(str(merged.get("layers", "")) or None, "layers")
            if not any((steps is None or r.step in steps) and (layers is None or r.layer in layers)
                       for r in wl.rows):
                raise UserError(f"{wl.path}: --steps {merged.get('steps', 'all')} --layers "
                                f"{merged.get('layers', 'all')} match no row")


def run(args: argparse.Namespace) -> int:
    from spatten_dv.regress import TestSpec, load_tiers, make_plan, run_tests, select_tests
    from spatten_dv.verif.sequences import SEQUENCES

    tiers, reseeds = load_tiers()
    if args.list:
        for tier, tests in tiers.items():
            print(f"{tier}: " + ", ".join(t.name for t in tests))
        print(f"nightly reseeds: {reseeds}")
        print("sequences: " + ", ".join(SEQUENCES))
        return 0
    knobs = _knobs(args)
    adhoc = args.sequence
    if adhoc is None and args.trace is not None and args.tier is None and not args.test:
        adhoc = "trace_replay"
    if adhoc is None and args.workload is not None and args.tier is None and not args.test:
        adhoc = "workload_replay"
    if adhoc is not None:
        bad = [s for s in adhoc.split(",") if s.strip() not in SEQUENCES]
        if bad:
            raise UserError(f"--sequence {adhoc!r}: unknown {bad}; sequences: "
                            f"{', '.join(SEQUENCES)}")
        specs = [TestSpec(name=adhoc.replace(",", "+"), sequences=adhoc, tier="adhoc")]
    else:
        tier = args.tier or "smoke"
        specs = select_tests(tiers[tier], args.test, tier)
    _check_inputs(knobs, specs)
    sims = ["verilator", "icarus"] if args.simulator == "both" else [args.simulator]
    plan = make_plan(specs, sims, args.seed,
                     reseeds if args.tier == "nightly" and args.seed is None else 0)
    if not plan:
        raise UserError(f"no test runs on {args.simulator}")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {args.out}: {exc.strerror or exc}") from None
    if args.jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {args.jobs}")
    if args.code_coverage and sims != ["verilator"]:
        raise UserError("--code-coverage needs --simulator verilator")
    results = run_tests(plan, args.out, waves=args.waves, knobs=knobs, jobs=args.jobs,
                        coverage=args.code_coverage, fast=not args.debug_build,
                        per_step=adhoc is not None and "replay" in adhoc)
    failed = [r for r in results if not r.passed]
    print(f"sim: {len(results) - len(failed)} passed, {len(failed)} failed")
    for r in failed:
        print(f"  FAILED {r.spec.name} [{r.simulator}] seed {r.seed}: rerun with "
              f"spatten-dv sim --test {r.spec.name} --simulator {r.simulator} --seed {r.seed}"
              if r.spec.tier != "adhoc" else
              f"  FAILED {r.spec.name} [{r.simulator}]: rerun with --seed {r.seed}")
    return 1 if failed else 0
