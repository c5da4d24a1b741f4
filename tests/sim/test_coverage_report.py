"""`spatten-dv coverage` units on small synthetic inputs: Verilator .dat parsing and merging,
per-file line/branch/toggle numbers, the lcov tracefile, cocotb-coverage XML merging (files made
by cocotb-coverage itself, in subprocesses: its database is a process-wide singleton), the
testplan, waivers, the whole report, and the CLI's one-line errors."""

import json
import shutil
import subprocess
import sys
import textwrap

import pytest

from spatten_dv import cli
from spatten_dv import coverage_report as cr
from spatten_dv.errors import UserError


def rec(f, line, kind, comment, count, *, col=0, lines=None, hier="spatten_core"):
    """One record as Verilator 5.048 writes it (key order of VerilatedCovImp::write)."""
    kv = [("f", f), ("l", str(line)), ("n", str(col)), ("t", kind),
          ("page", f"v_{kind}/{f.rsplit('/', 1)[-1][:-2]}"), ("o", comment)]
    if lines:
        kv.append(("S", lines))
    kv.append(("h", hier))
    return "C '" + "".join(f"\x01{k}\x02{v}" for k, v in kv) + f"' {count}\n"


HDL = "/repo/hdl/blk.v"


def dat_a():
    return "# SystemC::Coverage-3\n" + "".join([
        rec(HDL, 10, "line", "block", 5, lines="10,12-13"),
        rec(HDL, 14, "line", "case", 0, col=3),
        rec(HDL, 20, "branch", "if", 7, lines="20-21"),
        rec(HDL, 20, "branch", "else", 0, col=1),
        rec(HDL, 5, "toggle", "a[0]:0->1", 1),
        rec(HDL, 5, "toggle", "a[0]:1->0", 0),
        rec("/usr/share/verilator/include/verilated_std.sv", 1, "line", "block", 1),
    ])


def dat_b():
    return "# SystemC::Coverage-3\n" + "".join([
        rec(HDL, 10, "line", "block", 1, lines="10,12-13", hier="spatten_core.u1"),
        rec(HDL, 20, "branch", "else", 2, col=1),
        rec(HDL, 5, "toggle", "a[0]:1->0", 3),
    ])


def test_dat_merge_adds_counts_by_point_and_writes_verilator_format(tmp_path):
    (tmp_path / "a.dat").write_text(dat_a())
    (tmp_path / "b.dat").write_text(dat_b())
    points = cr.merge_dat([tmp_path / "a.dat", tmp_path / "b.dat"])
    assert len(points) == 7
    block = next(p for p in points.values() if p.fields.get("o") == "block"
                 and p.fields["f"] == HDL)
    assert block.count == 6 and block.hier == "spatten_core.*"
    assert block.fields == {"f": HDL, "l": "10", "n": "0", "t": "line",
                            "page": "v_line/blk", "o": "block", "S": "10,12-13"}
    cr.write_dat(points, tmp_path / "merged.dat")
    again = cr.merge_dat([tmp_path / "merged.dat"])
    assert {k: (p.count, p.hier) for k, p in again.items()} == \
        {k: (p.count, p.hier) for k, p in points.items()}
    assert (tmp_path / "merged.dat").read_text().startswith("# SystemC::Coverage-3\nC '\x01f")


def test_code_coverage_per_file_line_branch_toggle(tmp_path):
    (tmp_path / "a.dat").write_text(dat_a())
    (tmp_path / "b.dat").write_text(dat_b())
    files = cr.code_coverage(cr.merge_dat([tmp_path / "a.dat", tmp_path / "b.dat"]))
    assert list(files) == ["hdl/blk.v"]  # only hdl/ files count
    fc = files["hdl/blk.v"]
    # lines 10, 12, 13 (block), 14 (case, never), 20, 21 (if)
    assert fc.lines == {10: 6, 12: 6, 13: 6, 14: 0, 20: 7, 21: 7}
    assert (fc.line_hit, fc.line_found, fc.uncovered_lines) == (5, 6, [14])
    assert (fc.branch_hit, fc.branch_found) == (2, 2)
    assert (fc.toggle_hit, fc.toggle_found) == (2, 2)
    only_a = cr.code_coverage(cr.merge_dat([tmp_path / "a.dat"]))["hdl/blk.v"]
    assert (only_a.branch_hit, only_a.toggle_hit, only_a.untoggled()) == \
        (1, 1, [(5, "a[0]:1->0")])


def test_info_file_and_genhtml(tmp_path):
    (tmp_path / "a.dat").write_text(dat_a())
    src = tmp_path / "hdl" / "blk.v"
    src.parent.mkdir()
    src.write_text("".join(f"// line {i}\n" for i in range(1, 30)))
    text = dat_a().replace(HDL, str(src))
    (tmp_path / "a.dat").write_text(text)
    files = cr.code_coverage(cr.merge_dat([tmp_path / "a.dat"]))
    cr.write_info(files, tmp_path / "m.info")
    info = (tmp_path / "m.info").read_text().splitlines()
    assert f"SF:{src}" in info and "DA:14,0" in info and "DA:12,5" in info
    assert "BRDA:20,0,0,7" in info and "BRDA:20,0,1,0" in info
    assert info[-3:] == ["LF:6", "LH:5", "end_of_record"]
    assert shutil.which("genhtml"), "genhtml missing: apt-get install lcov (a prerequisite)"
    cr.render_lcov_html(tmp_path / "m.info", tmp_path / "html")
    assert "83.3 %" in (tmp_path / "html" / "index.html").read_text()


def test_bad_dat_is_a_user_error(tmp_path):
    (tmp_path / "x.dat").write_text("hello\n")
    with pytest.raises(UserError, match="not a Verilator coverage file"):
        cr.read_dat(tmp_path / "x.dat")
    (tmp_path / "y.dat").write_text("# SystemC::Coverage-3\nC 'oops\n")
    with pytest.raises(UserError, match="y.dat:2"):
        cr.read_dat(tmp_path / "y.dat")


MAKE_XML = textwrap.dedent("""
    import sys
    from cocotb_coverage.coverage import CoverCross, CoverPoint, coverage_db, coverage_section

    @coverage_section(
        CoverPoint("top.g.a", xf=lambda a, b: a, bins=[1, 2, 3]),
        CoverPoint("top.g.b", xf=lambda a, b: b, bins=["x", "y"]),
        CoverCross("top.g.axb", items=["top.g.a", "top.g.b"], ign_bins=[(3, "y")]),
    )
    def sample(a, b):
        pass

    @coverage_section(CoverPoint("top.h.c", xf=lambda c: c, bins=[True, False]))
    def sample_c(c):
        pass

    for a, b in eval(sys.argv[2]):
        sample(a, b)
    for c in eval(sys.argv[3]):
        sample_c(c)
    coverage_db.export_to_xml(filename=sys.argv[1])
""")


def make_xml(path, ab, c):
    subprocess.run([sys.executable, "-c", MAKE_XML, str(path), repr(ab), repr(c)], check=True)


@pytest.fixture(scope="module")
def two_xml(tmp_path_factory):
    d = tmp_path_factory.mktemp("fcov")
    make_xml(d / "one.xml", [(1, "x"), (2, "y")], [True])
    make_xml(d / "two.xml", [(1, "x"), (3, "x")], [])
    return d / "one.xml", d / "two.xml"


def test_functional_merge_and_uncovered_bins(tmp_path, two_xml):
    one = cr.parse_functional(two_xml[0])
    assert one.points["top.g.a"].uncovered == ["3"] and one.groups["top.h"] == 50.0
    assert cr.merge_functional(list(two_xml), tmp_path / "m.xml") == []
    m = cr.parse_functional(tmp_path / "m.xml")
    assert m.points["top.g.a"].percent == 100.0
    assert m.points["top.g.b"].uncovered == []
    assert m.points["top.g.axb"].bins == [("(1, 'x')", 2), ("(1, 'y')", 0), ("(2, 'x')", 0),
                                          ("(2, 'y')", 1), ("(3, 'x')", 1)]
    assert m.points["top.g.axb"].uncovered == ["(1, 'y')", "(2, 'x')"]
    assert m.points["top.h.c"].uncovered == ["False"]
    # 3 + 2 + 3 of 3 + 2 + 5 bins in top.g, 1 of 2 in top.h
    assert m.groups["top.g"] == pytest.approx(80.0)
    assert m.total == pytest.approx(100 * 9 / 12, abs=0.01)


def test_waivers_and_uncovered_list(tmp_path, two_xml):
    wv = tmp_path / "w.yaml"
    wv.write_text("- item: \"top.g.axb:(1, 'y')\"\n  reason: \"unreachable: y needs a != 1\"\n"
                  "- item: top.h.c\n  reason: 'sequence to add: a c=False job'\n"
                  "- item: hdl/blk.v:14\n  reason: 'unreachable: default of a full case'\n"
                  "- item: top.nope\n  reason: 'unreachable: gone'\n")
    waivers = cr.load_waivers(wv)
    cr.merge_functional(list(two_xml), tmp_path / "m.xml")
    func = cr.parse_functional(tmp_path / "m.xml")
    (tmp_path / "a.dat").write_text(dat_a())
    files = cr.code_coverage(cr.merge_dat([tmp_path / "a.dat"]))
    items, stale = cr.uncovered_items(files, func, waivers)
    by = {u["item"]: u for u in items}
    assert by["top.g.axb:(1, 'y')"]["waived"] and not by["top.g.axb:(2, 'x')"]["waived"]
    assert by["top.h.c:False"]["reason"].startswith("sequence to add:")
    assert by["hdl/blk.v"]["waived"] and by["hdl/blk.v"]["uncovered_lines"] == [14]
    assert stale == ["top.nope"]
    assert cr.load_waivers(tmp_path / "absent.yaml") == {}
    wv.write_text("- item: top.h.c\n  reason: because\n")
    with pytest.raises(UserError, match="must start with"):
        cr.load_waivers(wv)


def test_shipped_testplan_parses():
    names = [tp["name"] for tp in cr.load_testplan()]
    assert "widths_and_quantization" in names


def test_testplan_status():
    plan = [{"name": "p1", "desc": "", "tests": ["t1", "t2"], "covergroups": ["top.g.a"]},
            {"name": "p2", "desc": "", "tests": ["t3"], "covergroups": ["top.zz"]},
            {"name": "p3", "desc": "", "tests": ["t4"], "covergroups": []}]
    runs = [{"test": "t1", "simulator": "verilator", "seed": 1, "passed": True},
            {"test": "t3", "simulator": "verilator", "seed": 1, "passed": False}]
    func = cr.FunctionalCoverage({"top": 50.0}, {"top.g.a": cr.CoverPointCov(
        "top.g.a", [("1", 1), ("2", 0)])})
    st = cr.testplan_status(plan, runs, func)
    assert [s["status"] for s in st] == ["PASS", "FAIL", "NOT RUN"]
    assert st[0]["covergroups"] == {"top.g.a": 50.0} and st[1]["covergroups"] == {"top.zz": None}
    assert st[0]["tests_run"] == 1


def test_build_report_end_to_end(tmp_path, two_xml):
    src = tmp_path / "run"
    runs = []
    for i, (name, passed) in enumerate((("t1", True), ("t2", True), ("t3", False))):
        folder = src / f"{name}-verilator-s{i}"
        folder.mkdir(parents=True)
        (folder / "coverage.dat").write_text(dat_a() if i == 0 else dat_b())
        shutil.copy(two_xml[min(i, 1)], folder / "func_cov.xml")
        # a relative folder as written by a run from another cwd: found inside src
        runs.append({"test": name, "simulator": "verilator", "seed": i, "passed": passed,
                     "folder": f"elsewhere/{folder.name}"})
    (src / "regression.json").write_text(json.dumps(runs))
    tp = tmp_path / "tp.yaml"
    tp.write_text("testpoints:\n  - name: p1\n    desc: d\n    tests: [t1, t3]\n"
                  "    covergroups: [top.g.a]\n")
    rep = cr.build_report(src, tmp_path / "out", testplan=tp, waivers=tmp_path / "none.yaml",
                          html_report=False)
    s = json.loads((tmp_path / "out" / "coverage_summary.json").read_text())
    assert s["merged_runs"] == 2 and s["failed_runs"] == ["t3 [verilator] seed 2"]
    assert s["code"]["line_hit"] == 5 and s["code"]["line_found"] == 6
    assert s["code"]["toggle"] == 100.0 and s["functional"]["total"] == pytest.approx(75.0)
    assert s["testpoints"][0]["status"] == "FAIL"
    for name in ("functional.html", "functional.txt", "testplan.html", "testplan.md",
                 "uncovered.md", "merged.dat", "merged.info", "func_cov_merged.xml"):
        assert (tmp_path / "out" / name).is_file(), name
    assert "uncovered (1, 'y')" in (tmp_path / "out" / "functional.txt").read_text()
    text = "\n".join(cr.summary_lines(rep))
    assert "line 83.3 %" in text and "FAIL" in text and "1 failed, left out" in text


@pytest.fixture
def coverage_cli(monkeypatch, tmp_path_factory):
    tp = tmp_path_factory.mktemp("plan") / "testplan.yaml"
    tp.write_text("testpoints:\n  - {name: p, tests: [corners], covergroups: []}\n")
    monkeypatch.setattr(cr, "TESTPLAN_FILE", tp)  # independent of the shipped file
    if "coverage" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "coverage"))
    return cli.main


def test_from_empty_folder_is_one_line_exit_2(tmp_path, capsys, coverage_cli):
    assert coverage_cli(["coverage", "--from", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no regression results" in err
    assert coverage_cli(["coverage", "--from", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert coverage_cli(["coverage", "--from", str(tmp_path), "--test", "corners"]) == 2
    assert "do not apply" in capsys.readouterr().err


def test_missing_genhtml_says_how_to_install(monkeypatch):
    monkeypatch.setattr(cr.shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="apt-get install lcov"):
        cr.find_genhtml()
