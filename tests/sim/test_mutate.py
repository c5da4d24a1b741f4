"""RTL mutation testing (`spatten-dv mutate`, spatten_dv/mutate.py): the operators on small
Verilog snippets, what is never mutated, determinism, the sites of the real hdl/, and one real
mutant (a rounding constant of the P·V accumulator) killed by a short test."""

import argparse
import json
import time
from pathlib import Path

import pytest

from spatten_dv.mutate import (
    KILLED,
    OPERATORS,
    Campaign,
    _literal,
    _off_by_one,
    all_mutants,
    mutants_of_text,
    select,
    site_table,
    summarize,
)


def changes(text: str, op: str | None = None) -> set[tuple[str, str]]:
    return {(m.original, m.replacement) for m in mutants_of_text(text)
            if op is None or m.operator == op}


def module(body: str) -> str:
    return ("module m #(parameter integer W = 8) (input wire clk, input wire [W-1:0] a,\n"
            "  input wire [W-1:0] b, output reg [W-1:0] q, output wire y);\n"
            f"{body}\nendmodule\n")


def test_const_off_by_one_plain_and_sized():
    got = changes(module("assign y = a == 11'd1 && b > 5;"), "const")
    assert got == {("11'd1", "11'd2"), ("11'd1", "11'd0"), ("5", "6"), ("5", "4")}
    assert _off_by_one("1'b1") == ["1'b0"]  # 1'b10 does not fit: no +1
    assert _off_by_one("8'hFF") == ["8'hFE"]
    assert _off_by_one("32'sd1024") == ["32'sd1025", "32'sd1023"]
    assert _off_by_one("4'bx01") == [] and _literal("0") == (None, 0)


def test_arith_swaps_binary_only():
    got = changes(module("always @(posedge clk) q <= a + b - (-a);"), "arith")
    assert got == {("+", "-"), ("-", "+")}  # the unary minus is not an operator to swap
    assert len([m for m in mutants_of_text(module("always @(posedge clk) q <= a + b - (-a);"))
                if m.operator == "arith"]) == 2


def test_compare_swaps_and_nonblocking_assign_is_not_a_comparison():
    text = module("always @(posedge clk) begin\n"
                  "  if (a < b) q <= a;\n"
                  "  else if (a >= b) q <= b;\n"
                  "  else if (a == b) q <= 0;\n"
                  "end")
    got = changes(text, "compare")
    assert got == {("<", "<="), (">=", ">"), ("==", "!=")}


def test_logic_swaps():
    got = changes(module("assign y = (a[0] && b[0]) || (a[1] & b[1]) | a[2];"), "logic")
    assert got == {("&&", "||"), ("||", "&&"), ("&", "|"), ("|", "&")}
    # reduction operators are unary: never swapped
    assert changes(module("assign y = &a | |b;"), "logic") == {("|", "&")}


def test_drop_term():
    got = changes(module("assign y = a[0] && b[1] && !a[2];"), "drop_term")
    assert ("a[0] && b[1]", "a[0]") in got and ("a[0] && b[1]", "b[1]") in got
    assert ("b[1] && !a[2]", "!a[2]") in got


def test_rounding_constant():
    got = changes(module("always @* q = (a + 8'd16) >>> 5;"), "round")
    assert got == {("8'd16", "8'd0"), ("8'd16", "8'd32")}
    assert changes(module("always @* q = (a + 8'd3) >>> 5;"), "round") == set()


def test_if_force_and_invert():
    text = module("always @(posedge clk) begin\n"
                  "  if (a == b) q <= 1'b0;\n"
                  "  if (!y) q <= a;\n"
                  "end\n"
                  "assign y = a[0] ? b[0] : !b[1];")
    assert {("a == b", "1'b0"), ("a == b", "1'b1"), ("!y", "1'b0"),
            ("!y", "1'b1")} <= changes(text, "if_force")
    inv = changes(text, "invert")
    assert ("a == b", "!(a == b)") in inv and ("!y", "y") in inv
    assert ("a[0]", "!a[0]") in inv and ("!b[1]", "b[1]") in inv
    assert ("!y", "!(!y)") not in inv


def test_never_mutated_outside_behaviour():
    text = ("// assign y = a + 1;\n"
            "module m #(parameter integer W = 8 + 1, parameter integer N = 2) (\n"
            "  input wire [W-1:0] a, output wire [W-1:0] y, output reg [3:0] q);\n"
            "  localparam integer K = W - 1;\n"
            "  reg [K+1:0] r;\n"
            "  integer i;\n"
            "  /* if (a < 3) q <= 1; */\n"
            "  always @(*) begin\n"
            "    for (i = 0; i < N; i = i + 1) r[i+1] = a[i*2 +: 2] == 2'd3;\n"
            "    case (a[1:0])\n"
            "      2'd1: q = {W-4{1'b0}};\n"
            "      default: $display(\"x + 1 = %d\", a + 1);\n"
            "    endcase\n"
            "  end\n"
            "  wire [W-2:0] z = a[W-1:1];\n"
            "endmodule\n")
    ms = mutants_of_text(text)
    assert ms, "the snippet has mutable code"
    for m in ms:
        assert m.line in (9, 10, 11), m  # statement, case selector, case item body
        assert "[" not in m.original or m.operator in ("if_force", "invert"), m
    got = {(m.line, m.original, m.replacement) for m in ms}
    # the comparison of line 9 and its constant, the replicated bit of line 11: nothing else
    # (2'd3 + 1 does not fit in 2 bits: no 2'd4)
    assert got == {(9, "==", "!="), (9, "2'd3", "2'd2"), (11, "1'b0", "1'b1")}


def test_mutant_apply_and_check():
    text = module("assign y = a > b;")
    (m,) = [m for m in mutants_of_text(text) if m.operator == "compare"]
    assert m.apply(text) == text.replace("a > b", "a >= b")
    with pytest.raises(ValueError):
        m.apply(text.replace("a > b", "a + b"))


def test_sites_of_the_real_core_and_determinism():
    ms = all_mutants()
    assert len(ms) > 100
    assert not any(m.file == "spatten_exp2_lut.v" for m in ms)
    assert {m.operator for m in ms} == set(OPERATORS)
    assert [m.index for m in ms] == list(range(len(ms)))
    assert all_mutants()[7].key == ms[7].key  # enumeration is stable
    a = select(ms, count=15, seed=4)
    b = select(all_mutants(), count=15, seed=4)
    assert [m.key for m in a] == [m.key for m in b]
    assert [m.key for m in select(ms, count=15, seed=5)] != [m.key for m in a]
    sub = select(ms, count=10, seed=1, operators=["compare"], files=["spatten_softmax"])
    assert sub and all(m.operator == "compare" and m.file == "spatten_softmax.v" for m in sub)
    rest = select(ms, count=len(ms), seed=1, exclude_keys={ms[0].key})  # --equivalent
    assert len(rest) == len(ms) - 1 and ms[0].key not in {m.key for m in rest}
    table = site_table(ms)
    assert table[-1].split()[-1] == str(len(ms))
    hdl = Path(__file__).resolve().parents[2] / "hdl"
    for m in ms[::50]:  # every mutant applies to its own file
        m.apply((hdl / m.file).read_text())


def test_lint_makes_a_broken_mutant_invalid(tmp_path):
    from spatten_dv.mutate import _lint

    hdl = Path(__file__).resolve().parents[2] / "hdl"
    for src in hdl.glob("*.v"):
        (tmp_path / src.name).write_text(src.read_text())
    assert _lint(tmp_path) == ""
    p = tmp_path / "spatten_exp2.v"
    p.write_text(p.read_text().replace("(int_part >= 16)", "(int_part >= )"))
    assert _lint(tmp_path).startswith("%Error")


def test_summary_score():
    rows = [{"status": s, "operator": "const", "file": "f.v", "test": t, "index": i,
             "key": f"k{i}"} for i, (s, t) in enumerate(
        [("KILLED", "corners"), ("TIMEOUT", ""), ("SURVIVED", ""), ("INVALID", "")])]
    s = summarize(rows)
    assert (s["killed"], s["survived"], s["invalid"], s["score"]) == (2, 1, 1, 0.6667)
    assert s["survivors"] == [{"index": 2, "key": "k2"}]


def test_cli_checks_inputs_before_building(capsys):
    from spatten_dv.commands import mutate as cmd
    from spatten_dv.errors import UserError

    parser = argparse.ArgumentParser()
    cmd.register(parser.add_subparsers())
    args = parser.parse_args(["mutate", "--list", "--files", "spatten_pv_accum"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "spatten_pv_accum.v" in out and "spatten_core.v" not in out
    for argv, msg in ((["--operators", "nope"], "unknown"), (["--files", "x.v"], "not mutable"),
                      (["--test", "fault_drop_result"], "expect-fail"),
                      (["--test", "nosuch"], "not in ci/tiers.yaml"),
                      (["--knob", "jobs=-1", "--sequence", "probe"], "jobs"),
                      (["--mutant", "999999"], "candidates")):
        args = parser.parse_args(["mutate", "--out", "/tmp/never-made", *argv])
        with pytest.raises(UserError, match=msg):
            args.func(args)


def test_real_mutant_is_killed(tmp_path):
    """pv_accum's output rounding dropped ((acc + 0) >>> 11): real attention (a 4-job trace
    slice) gets outputs off by one. (The probe sequence would not see it: its softmax is
    peaked, p = 1.0, so every accumulator is a multiple of 2^11.) One build, ~1-2 minutes."""
    from spatten_dv.regress import load_tiers

    (m,) = [m for m in all_mutants() if m.file == "spatten_pv_accum.v"
            and m.operator == "round" and m.replacement == "32'sd0"]
    (spec,) = [t for t in load_tiers()[0]["smoke"] if t.name == "trace_code_slice"]
    t0 = time.monotonic()
    camp = Campaign([m], [spec], tmp_path, seed=1,
                    knobs={"job_timeout_us": 200, "coverage": False}, timeout_s=600)
    (r,) = camp.run()
    assert r["status"] == KILLED, r
    assert r["test"] == "trace_code_slice" and "MISMATCH" in r["failure"], r
    assert r["failure"].startswith("FIRST MISMATCH: job 0"), r
    (line,) = (tmp_path / "mutants.jsonl").read_text().splitlines()
    assert json.loads(line)["key"] == m.key
    folder = tmp_path / "mutants" / f"m000-{m.index}"
    assert "32'sd0" in (folder / "mutant.diff").read_text()
    assert not Path((folder / "sources.txt").read_text()).exists()  # mutant sources removed
    from spatten_dv.mutate import mutant_build_dirs

    job = json.loads((folder / "job.json").read_text())
    assert not any(d.exists() for d in mutant_build_dirs(job["tag"], {1}))  # build removed
    assert time.monotonic() - t0 < 600
