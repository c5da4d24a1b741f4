"""`spatten-dv dram run|bench|validate`: output, JSON, and one-line errors for user mistakes."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest

from spatten_dv.cli import main
from spatten_dv.models.dram.validation import REFERENCE_DIR, load_rows

TRACES = REFERENCE_DIR / "traces"
CONFIGS = REFERENCE_DIR / "configs"
GATHER64 = TRACES / "gather_v64B_64B.trace.gz"


def reference_row(**match):
    return next(r for r in load_rows()
                if all(getattr(r, k) == value for k, value in match.items()))


def run_json(capsys, *argv) -> dict:
    assert main(["dram", "run", *map(str, argv), "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # exactly one JSON object
    return json.loads(out)


def test_run_json_matches_reference(capsys):
    out = run_json(capsys, "--trace", GATHER64, "--refresh", "none")
    row = reference_row(trace="gather_v64B", standard="DDR4", refresh="NoRefresh",
                        row_policy="Open", arrival="one_per_cycle")
    for key in ("cycles", "reads", "writes", "row_hits", "row_misses", "row_conflicts"):
        assert out[key] == getattr(row, key), key
    assert out["avg_read_latency_cycles"] == pytest.approx(row.avg_read_latency, abs=1e-3)
    assert out["preset"] == "DDR4_8Gb_x8/DDR4_2400R" and out["refresh"] == "NoRefresh"


def test_run_with_ramulator_yaml(capsys):
    config = CONFIGS / "HBM2_8Gb-HBM2_2000Mbps-AllBank-ClosedCAP-RoBaRaCoCh.yaml"
    out = run_json(capsys, "--trace", TRACES / "gather_v64B_32B.trace.gz", "--config", config,
                   "--arrival", "all_at_0")
    row = reference_row(trace="gather_v64B", standard="HBM2", refresh="AllBank",
                        row_policy="ClosedCAP", arrival="all_at_0")
    assert (out["cycles"], out["row_hits"], out["row_misses"], out["row_conflicts"]) == (
        row.cycles, row.row_hits, row.row_misses, row.row_conflicts)
    assert out["controller"] == "HBM12"


def test_run_preset_options(capsys):
    out = run_json(capsys, "--trace", GATHER64, "--preset", "DDR4_3200AA", "--row-policy",
                   "closed", "--cap", "2", "--mapper", "chrabaroco", "--channels", "2",
                   "--scheduler", "fcfs")
    assert out["standard"] == "DDR4" and out["preset"].endswith("DDR4_3200AA")
    assert out["row_policy"] == "ClosedCAP(cap=2)" and out["mapper"] == "ChRaBaRoCo"
    assert out["channels"] == 2 and out["scheduler"] == "FCFS"
    assert out["reads"] == 2460


def test_run_text_output_and_per_request(capsys, tmp_path):
    per_request = tmp_path / "pr.csv"
    assert main(["dram", "run", "--trace", str(GATHER64), "--per-request",
                 str(per_request)]) == 0
    out = capsys.readouterr().out
    assert "row buffer" in out and "read latency histogram" in out and "bandwidth" in out
    lines = per_request.read_text().splitlines()
    assert lines[0] == "idx,arrive,depart" and len(lines) == 2461


def test_run_ideal(capsys, tmp_path):
    trace = tmp_path / "t.trace"
    trace.write_text("LD 0x0\nST 0x40\nLD 0x80\n")
    out = run_json(capsys, "--trace", trace, "--ideal", "10")
    assert out["cycles"] == 12 and out["avg_read_latency_cycles"] == 10


@pytest.mark.parametrize("argv,message", [
    (["--trace", "/no/such/file.trace"], "/no/such/file.trace: no such trace file"),
    (["--trace", "{bad}"], "bad.trace:3: bad address '0x4O'"),
    (["--trace", "{good}", "--config", "{good}"], "config: expected a mapping"),
    (["--trace", "{good}", "--config", "/no/cfg.yaml"], "/no/cfg.yaml: no such config file"),
    (["--trace", "{good}", "--config", str(CONFIGS / "HBM2_8Gb-HBM2_2000Mbps-AllBank-Open-"
                                            "RoBaRaCoCh.yaml"), "--channels", "2"],
     "--config takes the whole memory system"),
    (["--trace", "{good}", "--standard", "ddr4", "--preset", "HBM2_2000Mbps"],
     "--preset HBM2_2000Mbps is a HBM2 preset, but --standard is DDR4"),
    (["--trace", "{good}", "--preset", "DDR4_1600"], "unknown --preset 'DDR4_1600'"),
    (["--trace", "{good}", "--channels", "3"], "channel count must be a power of two"),
    (["--trace", "{good}", "--cap", "3"], "--cap only applies to --row-policy closed"),
    (["--trace", "{good}", "--ideal", "5", "--refresh", "none"], "--ideal replaces"),
])
def test_run_user_errors_are_one_line(capsys, tmp_path, argv, message):
    bad = tmp_path / "bad.trace"
    bad.write_text("LD 0x0\nST 0x40\nLD 0x4O\n")
    good = tmp_path / "good.trace"
    good.write_text("LD 0x0\n")
    argv = [a.format(bad=bad, good=good) for a in argv]
    assert main(["dram", "run", *argv]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("spatten-dv dram: error: ") and "\n" not in err
    assert message in err
    assert "Traceback" not in captured.err


def test_run_bad_yaml_syntax(capsys, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("memory_system:\n  controllers: [\n")
    trace = tmp_path / "t.trace"
    trace.write_text("LD 0x0\n")
    assert main(["dram", "run", "--trace", str(trace), "--config", str(config)]) == 2
    assert "c.yaml:" in capsys.readouterr().err


def test_bad_choice_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["dram", "run", "--trace", str(GATHER64), "--refresh", "perbank"])
    assert exc.value.code == 2
    assert "unknown refresh 'perbank'" in capsys.readouterr().err


def test_gzip_trace_detected_by_content(capsys, tmp_path):
    trace = tmp_path / "t.txt"
    trace.write_bytes(gzip.compress(b"LD 0x0\nLD 0x40\n"))
    assert run_json(capsys, "--trace", trace)["reads"] == 2


def test_bench_json(capsys):
    assert main(["dram", "bench", "--trace", "gather_v64B", "--standard", "ddr4",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (result,) = out["results"]
    assert result["requests"] == 2460 and result["requests_per_s"] > 0
    assert result["cycles_per_s"] > result["requests_per_s"]


def test_bench_text_and_unknown_trace(capsys):
    assert main(["dram", "bench", "--trace", "gather_v64B", "--standard", "hbm2"]) == 0
    assert "requests/s" in capsys.readouterr().out
    assert main(["dram", "bench", "--trace", "nope"]) == 2
    assert "unknown reference trace 'nope'" in capsys.readouterr().err


def test_validate_subset(capsys):
    assert main(["dram", "validate", "--filter", "gather_v64B", "--filter", "DDR4/NoRefresh",
                 "--jobs", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["summary"]["rows"] == 4 and out["summary"]["rows_within_bounds"] == 4
    assert main(["dram", "validate", "--filter", "no-such-row"]) == 2


def test_console_script_entry_point(tmp_path):
    trace = tmp_path / "t.trace"
    trace.write_text("LD 0x0\nLD 0x2000\n")
    result = subprocess.run(
        [sys.executable, "-m", "spatten_dv.cli", "dram", "run", "--trace", str(trace),
         "--json"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["cycles"] == 41 and out["row_misses"] == 2
    result = subprocess.run(
        [sys.executable, "-m", "spatten_dv.cli", "dram", "run", "--trace",
         str(tmp_path / "missing")], capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
