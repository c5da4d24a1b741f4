"""`spatten-dv mutate`: an RTL mutation campaign on the core, scored by the regression tests.

Samples `--count` mutants (spatten_dv/mutate.py: operators, sites), runs each on its own copy
of hdl/ with the selected tests on Verilator (`-j` at a time, one worker process each, a wall
timeout each), prints one line per mutant as it ends (KILLED by <test> / SURVIVED / INVALID /
TIMEOUT), and writes `<out>/mutants.jsonl` (as they end) and `<out>/mutation_summary.json` with
the score killed / (killed + survived). `--list` prints the candidate sites per file and
operator and runs nothing. Every input is checked before anything is built (exit 2, one line).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from spatten_dv.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mutate", help="RTL mutation campaign: how many injected bugs the "
                       "tests catch (mutation score)",
                       description="Mutate the core's Verilog (one small change per mutant), "
                       "run the selected tests on each mutant and report the mutation score "
                       "killed / (killed + survived).")
    p.add_argument("--count", type=int, default=20, help="mutants to sample (default 20)")
    p.add_argument("--seed", type=int, default=1,
                   help="sampling seed, also the seed of every test run (default 1)")
    p.add_argument("--operators", metavar="OP[,OP...]",
                   help="only these operators (default all; see --list)")
    p.add_argument("--files", metavar="F[,F...]",
                   help="only these hdl/ files (e.g. spatten_softmax.v or spatten_softmax)")
    p.add_argument("--mutant", type=int, action="append", default=[], metavar="INDEX",
                   help="run this candidate (its #index in the output; repeatable) instead "
                   "of sampling")
    p.add_argument("--tier", choices=("smoke", "full"), default=None,
                   help="the normal tests of this tier (default smoke unless --test alone)")
    p.add_argument("--test", action="append", default=[], metavar="NAME",
                   help="a test of ci/tiers.yaml (repeatable); alone it replaces the tier's "
                   "tests, with --tier it is added to them")
    p.add_argument("--sequence", metavar="S[,S...]",
                   help="an ad-hoc test running these sequences (e.g. probe: a fast kill check)")
    p.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE",
                   help="environment knob for every test run (repeatable)")
    p.add_argument("--job-timeout-us", type=int, default=200,
                   help="simulated time a job may take before its test fails (default 200)")
    p.add_argument("--timeout", type=float, default=0,
                   help="wall seconds per mutant (default: 3 x the baseline + 300)")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the run of the unmutated core (the tests must pass on it)")
    p.add_argument("--equivalent", type=Path, metavar="FILE",
                   help="mutants known to be equivalent (one key of mutants.jsonl a line): "
                   "never sampled, not scored")
    p.add_argument("--min-score", type=float, metavar="PCT",
                   help="exit 1 when the score is below this percentage")
    p.add_argument("-j", "--jobs", type=int, default=1,
                   help="mutants at a time, each its own process (default 1)")
    p.add_argument("--out", type=Path, default=Path("build/mutate"),
                   help="results folder (default build/mutate)")
    p.add_argument("--list", action="store_true",
                   help="list the candidate mutation sites per file and operator and exit")
    p.set_defaults(func=run)


def _split(text: str | None) -> list[str]:
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def _tests(args):
    """The TestSpecs to run on each mutant (normal tests only, Verilator)."""
    from spatten_dv.regress import TestSpec, load_tiers
    from spatten_dv.verif.sequences import SEQUENCES

    tiers, _ = load_tiers()
    every = {t.name: t for tests in tiers.values() for t in tests}
    specs = []
    if args.tier or not (args.test or args.sequence):
        specs = [t for t in tiers[args.tier or "smoke"] if t.test == "SpattenSimTest"]
    for want in args.test:
        found = [t for n, t in every.items() if n == want or n.startswith(want + ".")]
        if not found:
            raise UserError(f"--test {want!r} is not in ci/tiers.yaml; tests: "
                            f"{', '.join(sorted(every))}")
        for t in found:
            if t.test != "SpattenSimTest":
                raise UserError(f"--test {t.name!r} is an expect-fail test ({t.test}): a "
                                "mutant cannot be judged by it")
            if t.name not in [s.name for s in specs]:
                specs.append(t)
    if args.sequence:
        bad = [s for s in _split(args.sequence) if s not in SEQUENCES]
        if bad:
            raise UserError(f"--sequence {args.sequence!r}: unknown {bad}; sequences: "
                            f"{', '.join(SEQUENCES)}")
        specs.append(TestSpec(name=args.sequence.replace(",", "+"), sequences=args.sequence,
                              tier="adhoc"))
    specs = [t for t in specs if "verilator" in t.simulators]
    if not specs:
        raise UserError("no test runs on Verilator in that selection")
    return specs


def _knobs(args, specs) -> dict:
    from spatten_dv.verif.config import ConfigError, EnvConfig

    knobs = {}
    for kv in args.knob:
        if "=" not in kv:
            raise UserError(f"--knob {kv!r}: expected NAME=VALUE")
        k, v = kv.split("=", 1)
        knobs[k.strip()] = v.strip()
    if args.job_timeout_us < 1:
        raise UserError(f"--job-timeout-us must be >= 1, got {args.job_timeout_us}")
    knobs.setdefault("job_timeout_us", args.job_timeout_us)
    for spec in specs:
        try:
            EnvConfig.resolve(environ={}, spec=dict(spec.knobs, **knobs,
                                                    sequences=spec.sequences))
        except ConfigError as exc:
            raise UserError(f"test {spec.name}: {exc}") from None
    return knobs


def run(args: argparse.Namespace) -> int:
    from spatten_dv.mutate import (
        OPERATORS,
        SURVIVED,
        Campaign,
        all_mutants,
        result_line,
        select,
        site_table,
        summarize,
    )
    from spatten_dv.sim import HDL_DIR

    mutants = all_mutants()
    ops, files = _split(args.operators), _split(args.files)
    bad_ops = [o for o in ops if o not in OPERATORS]
    if bad_ops:
        raise UserError(f"--operators: unknown {bad_ops}; operators: {', '.join(OPERATORS)}")
    names = {m.file for m in mutants}
    bad_files = [f for f in files if f not in names and f + ".v" not in names]
    if bad_files:
        raise UserError(f"--files: {bad_files} not mutable; files: {', '.join(sorted(names))}")
    if args.list:
        shown = [m for m in mutants if (not ops or m.operator in ops)
                 and (not files or m.file in files or m.file[:-2] in files)]
        for line in site_table(shown):
            print(line)
        return 0
    if args.count < 1:
        raise UserError(f"--count must be >= 1, got {args.count}")
    if args.jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {args.jobs}")
    equivalent: set[str] = set()
    if args.equivalent is not None:
        try:
            equivalent = {ln.strip() for ln in args.equivalent.read_text().splitlines()
                          if ln.strip() and not ln.lstrip().startswith("#")}
        except OSError as exc:
            raise UserError(f"--equivalent {args.equivalent}: {exc.strerror or exc}") from None
    if args.mutant:
        bad = [k for k in args.mutant if not 0 <= k < len(mutants)]
        if bad:
            raise UserError(f"--mutant {bad[0]}: candidates are #0..#{len(mutants) - 1}")
        chosen = [mutants[k] for k in args.mutant]
    else:
        chosen = select(mutants, count=args.count, seed=args.seed, operators=ops,
                        files=files, exclude_keys=equivalent)
        if not chosen:
            raise UserError("no candidate mutant in that selection")
    specs = _tests(args)
    knobs = _knobs(args, specs)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {args.out}: {exc.strerror or exc}") from None

    t0 = time.monotonic()
    print(f"mutate: {len(chosen)} of {len(mutants)} candidate mutants (seed {args.seed}), "
          f"{args.jobs} at a time; tests: {', '.join(s.name for s in specs)} (verilator); "
          f"results in {args.out}/", flush=True)
    camp = Campaign(chosen, specs, args.out, seed=args.seed, knobs=knobs, jobs=args.jobs,
                    timeout_s=args.timeout or 1800)
    baseline = None
    if not args.no_baseline:
        print("mutate: baseline (the unmutated core) ...", flush=True)
        baseline = camp.baseline()
        if baseline["status"] != SURVIVED:
            print(f"mutate: the tests fail on the unmutated core ({baseline['status']}: "
                  f"{baseline.get('test') or ''} {baseline['failure']}); fix that first "
                  f"(log: {baseline.get('log') or args.out / 'baseline'})", flush=True)
            return 1
        # (a test's own time: the first one's wall time includes the build)
        times = {t["test"]: t.get("sim_s") or t["wall_s"] for t in baseline["tests_run"]}
        camp.tests = sorted(specs, key=lambda s: times.get(s.name, 0))  # quick kills first
        if not args.timeout:
            camp.timeout_s = 3 * baseline["wall_s"] + 300
        print(f"mutate: baseline passed in {baseline['wall_s']:.0f} s; tests run fastest "
              f"first; {camp.timeout_s:.0f} s wall limit per mutant", flush=True)

    def finished(r: dict, n: int, total: int) -> None:
        print(f"[{n:>{len(str(total))}}/{total}] " + result_line(r), flush=True)
        if r["status"] != SURVIVED and r["failure"]:
            print(f"      {r['failure']}", flush=True)

    results = camp.run(finished)
    summary = summarize(results, extra={
        "seed": args.seed, "candidates": len(mutants), "equivalent_excluded": len(equivalent),
        "operators": ops or list(OPERATORS), "files": files or "all",
        "tests": [s.name for s in camp.tests], "knobs": knobs, "hdl": str(HDL_DIR),
        "baseline_wall_s": baseline["wall_s"] if baseline else None,
        "wall_s": round(time.monotonic() - t0, 1)})
    (args.out / "mutation_summary.json").write_text(json.dumps(summary, indent=1))
    killed, survived = summary["killed"], summary["survived"]
    score = summary["score"]
    print(f"mutate: score {killed} / {killed + survived} = "
          f"{'n/a' if score is None else f'{100 * score:.1f} %'} (killed {killed}, of which "
          f"{summary['timeouts']} by timeout; survived {survived}; invalid {summary['invalid']}"
          f" not counted); {summary['wall_s']:.0f} s")
    for s in summary["survivors"]:
        print(f"  SURVIVED #{s['index']}: {s['key']}")
    print(f"mutate: {args.out}/mutants.jsonl, {args.out}/mutation_summary.json")
    if args.min_score is not None and (score is None or 100 * score < args.min_score):
        print(f"mutate: score below --min-score {args.min_score} %")
        return 1
    return 0
