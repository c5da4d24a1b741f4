"""`spatten-dv coverage`: code and functional coverage of a tier on Verilator, and the testplan.

Runs the tier's tests (ci/tiers.yaml; `--tier`, `--test`) on Verilator built with line and toggle
coverage, unless `--from DIR` names a regression folder that already holds the results. Then
merges every run's coverage.dat (line, branch, toggle per hdl/ file; HTML by lcov's genhtml)
and func_cov.xml (cocotb-coverage), annotates ci/testplan.yaml's testpoints with their tests'
pass/fail and their covergroups' coverage, lists what is uncovered against
ci/coverage_waivers.yaml, prints a summary and writes the reports (docs/coverage.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from spatten_dv.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("coverage", help="code + functional coverage of a tier on Verilator, "
                       "testplan status, uncovered list",
                       description="Run a tier's tests on Verilator with coverage (or read an "
                       "earlier run with --from), merge code and functional coverage, and "
                       "write HTML, Markdown and JSON reports.")
    p.add_argument("--tier", choices=("smoke", "full", "nightly"), default=None,
                   help="tests of this tier from ci/tiers.yaml (default smoke)")
    p.add_argument("--test", action="append", default=[], metavar="NAME",
                   help="only this test of the tier list (repeatable)")
    p.add_argument("-j", "--jobs", type=int, default=1, help="test runs at a time (default 1)")
    p.add_argument("--seed", type=int, help="seed of every test run (default: random, printed)")
    p.add_argument("--out", type=Path, default=None,
                   help="reports (and, when running, results) folder (default build/coverage; "
                   "with --from: that folder)")
    p.add_argument("--from", dest="from_dir", type=Path, metavar="DIR",
                   help="report on the results already in DIR (a spatten-dv coverage or sim "
                   "output folder) instead of running tests")
    p.set_defaults(func=run)


def _plan(args):
    from spatten_dv.regress import load_tiers, make_plan, select_tests

    tiers, reseeds = load_tiers()
    tier = args.tier or "smoke"
    specs = select_tests(tiers[tier], args.test, tier)
    plan = make_plan(specs, ["verilator"], args.seed,
                     reseeds if tier == "nightly" and args.seed is None else 0)
    if not plan:
        raise UserError(f"no test of tier {tier} runs on Verilator")
    return plan


def run(args: argparse.Namespace) -> int:
    from spatten_dv import coverage_report as cr

    cr.load_testplan()  # bad testplan or waivers: one line now, not after the run
    cr.load_waivers()
    if args.from_dir is not None:
        if args.tier or args.test or args.seed is not None:
            raise UserError("--from reports on finished runs: --tier, --test and --seed do "
                            "not apply")
        src = args.from_dir
        out = args.out or src
        cr.find_runs(src)  # one line, exit 2, when there is nothing to report on
    else:
        from spatten_dv.regress import run_tests

        out = src = args.out or Path("build/coverage")
        plan = _plan(args)
        cr.find_genhtml()  # before a long run, not after it
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create {out}: {exc.strerror or exc}") from None
        if args.jobs < 1:
            raise UserError(f"--jobs must be >= 1, got {args.jobs}")
        run_tests(plan, out, coverage=True, jobs=args.jobs)
    rep = cr.build_report(src, out)
    print("\n".join(cr.summary_lines(rep)))
    shown = [p for p in rep.outputs if p.name in ("index.html", "functional.html",
                                                  "testplan.html", "testplan.md",
                                                  "uncovered.md", "coverage_summary.json")]
    print("  reports: " + ", ".join(str(p) for p in shown))
    return 1 if any(r.get("passed") is False for r in rep.runs) else 0
