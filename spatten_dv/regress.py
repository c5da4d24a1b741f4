"""Regression runner of the pyuvm environment: tiers, tests, seeds, simulators.

A tier list (ci/tiers.yaml) names tests; a test is a set of sequences plus knobs run by a cocotb
test class of verif/uvm_tests.py on spatten_core. `run_tests()` builds once per (simulator,
N_CH, coverage) and runs each test in its own folder `<out>/<test>-<sim>-s<seed>/` (log,
results XML, jobs.jsonl, summary.json, func_cov.xml, coverage.dat), prints one line per test as
it finishes, shows progress while it runs (jobs checked so far, from jobs.jsonl), and rewrites
`<out>/junit.xml` (every finished test) and `<out>/regression.json` after each test, so a crash
or Ctrl-C loses nothing that finished.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from spatten_dv.errors import UserError
from spatten_dv.sim import REPO_ROOT, SimulationFailed, run_cocotb
from spatten_dv.verif.tb_top import core_toplevel, playout

TIERS_FILE = REPO_ROOT / "ci" / "tiers.yaml"
TIER_ORDER = ("smoke", "full", "nightly")
TEST_CLASSES = ("SpattenSimTest", "InjectedFaultTest")
COVERAGE_BUILD_ARGS = ("--coverage-line", "--coverage-toggle")


@dataclass
class TestSpec:
    __test__ = False  # not a pytest test class

    name: str
    sequences: str
    knobs: dict = field(default_factory=dict)
    test: str = "SpattenSimTest"
    simulators: tuple[str, ...] = ("verilator", "icarus")
    tier: str = "smoke"

    @property
    def channels(self) -> int:
        return int(self.knobs.get("channels", 1))


@dataclass
class TestResult:
    __test__ = False

    spec: TestSpec
    simulator: str
    seed: int
    passed: bool
    wall_s: float
    folder: Path
    summary: dict = field(default_factory=dict)
    failure: str = ""

    def as_dict(self) -> dict:
        return {"test": self.spec.name, "tier": self.spec.tier, "simulator": self.simulator,
                "seed": self.seed, "passed": self.passed, "wall_s": round(self.wall_s, 1),
                "folder": str(self.folder), "failure": self.failure,
                "stages": stage_split(self.summary.get("totals", {})),
                "summary": {k: v for k, v in self.summary.items() if k != "config"}}


def load_tiers(path: Path = TIERS_FILE) -> tuple[dict[str, list[TestSpec]], int]:
    """Tests of each tier (cumulative: full includes smoke) and the nightly reseed count."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"{path}: cannot read the tier list: {exc}") from None
    from spatten_dv.verif.config import EnvConfig
    from spatten_dv.verif.sequences import SEQUENCES

    knob_names = set(EnvConfig.knob_names())
    tiers: dict[str, list[TestSpec]] = {}
    reseeds = 0
    acc: list[TestSpec] = []
    seen = set()
    for tier in TIER_ORDER:
        entry = raw.get(tier) or []
        if isinstance(entry, dict):
            reseeds = int(entry.get("reseeds", 0))
            entry = entry.get("tests") or []
        for t in entry:
            spec = TestSpec(name=t["name"], sequences=t["sequences"], knobs=dict(t.get("knobs")
                            or {}), test=t.get("test", "SpattenSimTest"),
                            simulators=tuple(t.get("simulators", ("verilator", "icarus"))),
                            tier=tier)
            parts = [spec]
            if t.get("split_steps"):  # one test per decode step (the state clears each step)
                parts = [TestSpec(name=f"{spec.name}.s{k}", sequences=spec.sequences,
                                  knobs=dict(spec.knobs, steps=str(k)), test=spec.test,
                                  simulators=spec.simulators, tier=tier)
                         for k in range(int(t["split_steps"]))]
            bad_seq = [s for s in spec.sequences.split(",") if s.strip() not in SEQUENCES]
            bad_knob = sorted(set(spec.knobs) - knob_names)
            if spec.name in seen or bad_seq or bad_knob or spec.test not in TEST_CLASSES:
                raise UserError(f"{path}: test {spec.name!r}: duplicate name, unknown "
                                f"sequence {bad_seq}, knob {bad_knob} or test {spec.test!r}")
            seen.add(spec.name)
            acc.extend(parts)
        tiers[tier] = list(acc)
    return tiers, reseeds


def select_tests(specs: list[TestSpec], wanted: list[str], tier: str) -> list[TestSpec]:
    """The tests named in `wanted` (a split test's name, e.g. trace_prose, selects its parts)."""
    if not wanted:
        return specs

    def chosen(name: str, w: str) -> bool:
        return name == w or name.startswith(w + ".")

    bad = [w for w in wanted if not any(chosen(t.name, w) for t in specs)]
    if bad:
        raise UserError(f"--test {bad[0]!r} is not in tier {tier}; tests: "
                        f"{', '.join(sorted(t.name for t in specs))}")
    return [t for t in specs if any(chosen(t.name, w) for w in wanted)]


def _progress(folder: Path, label: str, stop: threading.Event) -> None:
    """Print how many jobs the running test has checked (from its jobs.jsonl)."""
    tty = sys.stdout.isatty()
    t0 = time.monotonic()
    last = ""
    while not stop.wait(2.0 if tty else 30.0):
        try:
            n = sum(1 for _ in open(folder / "jobs.jsonl", encoding="utf-8"))
        except OSError:
            n = 0
        line = f"  ... {label}: {n} jobs checked, {time.monotonic() - t0:.0f} s"
        if line != last:
            print(("\r" + line) if tty else line, end="" if tty else "\n", flush=True)
            last = line
    if tty and last:
        print("\r" + " " * len(last) + "\r", end="", flush=True)


def build_parameters(spec: TestSpec, knobs: dict | None = None) -> dict:
    """Verilog parameters of the core a run needs: the named configuration's (knob `config`)
    and N_CH from the test's knobs, overridden by the run's (e.g. `spatten-dv sim --channels
    2 --config small`), so the environment and the DUT agree."""
    from spatten_dv.models.params import configuration, verilog_parameters, with_configuration_knobs

    merged = with_configuration_knobs(dict(spec.knobs, **(knobs or {})))
    params = verilog_parameters(configuration(str(merged.get("config", "default"))))
    return dict(params, N_CH=int(merged.get("channels", 1)))


def run_one(spec: TestSpec, simulator: str, seed: int, out: Path, *, waves: bool = False,
            coverage: bool = False, knobs: dict | None = None,
            progress: bool = True, hdl_dir: Path | None = None,
            build_tag: str = "", fast: bool = False) -> TestResult:
    """Run one test; `hdl_dir` + `build_tag` run it on other RTL sources (e.g. a mutant);
    `fast` runs it on a speed build of Verilator (spatten_dv.sim.VERILATOR_FAST_BUILD_ARGS)."""
    folder = (out / f"{spec.name}-{simulator}-s{seed}").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("jobs.jsonl", "summary.json", "func_cov.xml", "coverage.dat"):
        (folder / stale).unlink(missing_ok=True)
    from spatten_dv.models.params import with_configuration_knobs

    env_spec = dict(with_configuration_knobs(dict(spec.knobs, **(knobs or {}))),
                    sequences=spec.sequences, out=str(folder.resolve()))
    # cocotb rewrites the asserts of every module imported after the test module by default
    # (torch included): seconds of start-up per run. The environment reports its own errors.
    extra_env = {"SPATTEN_ENV": json.dumps(env_spec), "COCOTB_REWRITE_ASSERTION_FILES":
                 os.environ.get("COCOTB_REWRITE_ASSERTION_FILES", "uvm_tests.py")}
    stop = threading.Event()
    label = f"{spec.name} [{simulator}]"
    th = threading.Thread(target=_progress, args=(folder, label, stop), daemon=True)
    if progress:
        th.start()
    t0 = time.monotonic()
    failure = ""
    try:
        # The R playout testbench top (verif/tb_top.py) on plain runs; code coverage and mutant
        # builds keep spatten_core as the top (their tools name its build and hierarchy).
        toplevel, sources = core_toplevel(playout() and not coverage and not build_tag, hdl_dir)
        run_cocotb(toplevel=toplevel, sources=sources,
                   test_module="spatten_dv.verif.uvm_tests", testcase=spec.test,
                   simulator=simulator, parameters=build_parameters(spec, knobs),
                   extra_env=extra_env, seed=seed, waves=waves, work_dir=folder,
                   extra_build_args=COVERAGE_BUILD_ARGS if coverage else (),
                   build_tag=build_tag, fast=fast and not coverage)
        passed = True
    except SimulationFailed as exc:
        passed, failure = False, str(exc)
    finally:
        stop.set()
        if progress:
            th.join()
    wall = time.monotonic() - t0
    summary = {}
    if (folder / "summary.json").is_file():
        summary = json.loads((folder / "summary.json").read_text())
    return TestResult(spec, simulator, seed, passed, wall, folder, summary, failure)


# Exclusive stage counters of the result (docs/architecture.md section 9) -> short labels.
STAGE_LABELS = (("cyc_fetch_wait", "fetch"), ("cyc_qk", "qk"), ("cyc_softmax", "softmax"),
                ("cyc_topk", "topk"), ("cyc_v", "v"), ("cyc_ctrl", "ctrl"))


def stage_split(counts: dict) -> str:
    """'bound by fetch: fetch 61% (stall 40%) qk 12% ...' from summed stage counters."""
    total = sum(counts.get(k, 0) for k, _ in STAGE_LABELS)
    if not total:
        return ""
    parts = {label: 100 * counts.get(k, 0) / total for k, label in STAGE_LABELS}
    bound = max(parts, key=parts.get)
    bits = []
    for label, pct in parts.items():
        bits.append(f"{label} {pct:.0f}%")
        if label == "fetch":
            bits[-1] += f" (stall {100 * counts.get('cyc_fetch_stall', 0) / total:.0f}%)"
    return f"bound by {bound}: " + " ".join(bits)


def _line(r: TestResult) -> str:
    s = r.summary
    cov = s.get("functional_coverage", {}).get("top")
    bits = [f"{'PASS' if r.passed else 'FAIL'}", f"{r.spec.name:<26}", f"{r.simulator:<9}",
            f"seed {r.seed:<10}"]
    if s:
        bits += [f"jobs {s.get('jobs', 0):>5}", f"cycles {s.get('sim_cycles', 0):>9}",
                 f"DRAM {s.get('dram_bytes', 0) / 1e6:7.3f} MB",
                 f"{s.get('cycles_per_s', 0):>7} cycles/s"]
        if cov is not None:
            bits.append(f"fcov {cov:5.1f} %")
    bits.append(f"{r.wall_s:6.1f} s")
    split = stage_split(s.get("totals", {})) if s else ""
    return "  ".join(bits) + (f"\n      {split}" if split else "")


def write_reports(results: list[TestResult], out: Path) -> None:
    suite = ET.Element("testsuite", name="spatten-dv", tests=str(len(results)),
                       failures=str(sum(not r.passed for r in results)))
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"{r.spec.tier}.{r.simulator}",
                             name=f"{r.spec.name}[seed={r.seed}]", time=f"{r.wall_s:.1f}")
        if not r.passed:
            ET.SubElement(case, "failure", message=r.failure[:500]).text = r.failure
        ET.SubElement(case, "system-out").text = str(r.folder)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(out / "junit.xml", encoding="utf-8", xml_declaration=True)
    (out / "regression.json").write_text(json.dumps([r.as_dict() for r in results], indent=1))


def run_tests(plan: list[tuple[TestSpec, str, int]], out: Path, *, waves: bool = False,
              coverage: bool = False, knobs: dict | None = None,
              per_step: bool = False, jobs: int = 1, fast: bool = False) -> list[TestResult]:
    """Run the plan (`jobs` test runs at a time, each its own process); report as they end."""
    out.mkdir(parents=True, exist_ok=True)
    results: list[TestResult] = []
    print(f"sim: {len(plan)} test run(s), {jobs} at a time; results in {out}/ (junit.xml, "
          f"regression.json)", flush=True)

    def finished(r: TestResult) -> None:
        results.append(r)
        write_reports(results, out)
        print(f"[{len(results)}/{len(plan)}] " + _line(r), flush=True)
        if per_step:
            for line in step_table(r.folder):
                print(line, flush=True)
        if not r.passed:
            print(f"      {r.failure}\n      log: {r.folder}", flush=True)

    if jobs <= 1:
        for spec, sim, seed in plan:
            print(f"... {spec.name} on {sim}, seed {seed}", flush=True)
            finished(run_one(spec, sim, seed, out, waves=waves, coverage=coverage,
                             knobs=knobs, fast=fast))
        return results
    # Runs that share a build wait on its lock while the first of them builds it.
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run_one, spec, sim, seed, out, waves=waves, coverage=coverage,
                               knobs=knobs, progress=False, fast=fast)
                   for spec, sim, seed in plan]
        for fut in as_completed(futures):
            finished(fut.result())
    return results


def make_plan(tests: list[TestSpec], simulators: list[str] | None, seed: int | None,
              reseeds: int = 0) -> list[tuple[TestSpec, str, int]]:
    rng = random.Random(seed if seed is not None else int(os.environ.get(
        "COCOTB_RANDOM_SEED", random.randrange(1 << 31))))
    plan = []
    for spec in tests:
        seeds = [seed if seed is not None else rng.randrange(1 << 31)]
        seeds += [rng.randrange(1 << 31) for _ in range(reseeds)]
        for sim in spec.simulators:
            if simulators and sim not in simulators:
                continue
            for s in seeds:
                plan.append((spec, sim, s))
    return plan


def step_table(folder: Path) -> list[str]:
    """Per decode step of a replay (jobs.jsonl records with a step): the traffic and cycles."""
    steps: dict[int, dict] = {}
    try:
        lines = (folder / "jobs.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        r = json.loads(line)
        if "step" not in r:
            return []
        s = steps.setdefault(r["step"], dict(jobs=0, keys=0, values=0, lsb=0, beats=0,
                                             cycles=0))
        for k in [k for k, _ in STAGE_LABELS] + ["cyc_fetch_stall"]:
            s[k] = s.get(k, 0) + r.get(k, 0)
        s["jobs"] += 1
        s["keys"] += r["keys"]
        s["values"] += r["values"]
        s["lsb"] += r["lsb_fetched"]
        s["beats"] += r["beats"]
        s["cycles"] += r["cycles"]
    out = [f"  {'step':>5} {'jobs':>5} {'keys':>8} {'values':>8} {'LSB':>5} {'DRAM MB':>9} "
           f"{'cycles':>10} {'B/cycle':>8}  stage split (section 9 counters)"]
    for k in sorted(steps):
        s = steps[k]
        nbytes = s["beats"] * 32
        out.append(f"  {k:>5} {s['jobs']:>5} {s['keys']:>8} {s['values']:>8} {s['lsb']:>5} "
                   f"{nbytes / 1e6:>9.3f} {s['cycles']:>10} "
                   f"{nbytes / s['cycles'] if s['cycles'] else 0:>8.2f}  {stage_split(s)}")
    return out
