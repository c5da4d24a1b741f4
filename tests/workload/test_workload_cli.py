"""`spatten-dv workload list|info|replay`: output and exit codes (0 ok, 1 mismatch, 2 bad input)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spatten_dv import cli
from spatten_dv.traces import workload as wlmod

TRACE = str(Path(__file__).resolve().parents[2] / "traces" / "smollm2_prose.safetensors")
PER8 = "summary-gpt2-small-wikitext2-per8"
MEDIUM_HP = "summary-gpt2-medium-wikitext2-per0-hp-step5+dedic+glob_p+local_p+hp+topk+quant"


def run(capsys, *argv):
    try:
        rc = cli.main(["workload", *argv])
    except SystemExit as exc:  # argparse errors
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def test_list(capsys):
    rc, out, _ = run(capsys, "list")
    assert rc == 0
    assert len(out.splitlines()) == 5 and "12288 rows" in out and PER8 in out


@pytest.mark.parametrize("name,facts", [
    ("small", ["rows          1", "gpt2-medium (24 layers x 16 heads"]),
    ("summary-gpt2-medium-ptb-per0", ["rows          12288", "100.00 % of L fetched"]),
    (MEDIUM_HP, ["rows          11328", "53.77 % of L fetched", "16.18 % of L fetched",
                 "960 (step, layer, head) rows absent", "q 16 -> 12 bits"]),
    ("summary-gpt2-small-wikitext2-per8-step1+dedic", ["rows          4608"]),
    (PER8, ["27.61 % of L fetched", "5.49 % of L fetched", "LSB refetch   323 of 4608 rows "
            "(7.01 %)", "K MSB 6, K LSB increment 4, q 16, V 6", "msb 6 lsb 4 v 6 q 12",
            "0: 921, 1: 716, 2-5: 204, 6-11: 102"]),
])
def test_info(capsys, name, facts):
    rc, out, err = run(capsys, "info", name)
    assert rc == 0, err
    for fact in facts:
        assert fact in out


def test_info_json_and_path(capsys, tmp_path):
    p = wlmod.shipped_dir() / f"{PER8}.csv.gz"
    rc, out, _ = run(capsys, "info", str(p), "--json")
    assert rc == 0
    s = json.loads(out)
    assert s["rows"] == 4608 and s["lsb_refetch_rows"] == 323 and s["model"] == "gpt2"


def test_info_errors_exit_2(capsys, tmp_path):
    rc, _, err = run(capsys, "info", "nope")
    assert rc == 2 and "not a shipped workload" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("iteration_id,layer_id\n0,0\n")
    rc, _, err = run(capsys, "info", str(bad))
    assert rc == 2
    assert err.startswith("spatten-dv workload: error: ") and "line 1, column 'head_id'" in err
    trunc = tmp_path / "trunc.csv"
    lines = wlmod.gzip.decompress(
        (wlmod.shipped_dir() / "small.csv.gz").read_bytes()).decode().splitlines()
    trunc.write_text("\n".join(lines[:2]) + "\n")
    rc, _, err = run(capsys, "info", str(trunc))
    assert rc == 2 and "truncated file?" in err
    rc, out, _ = run(capsys, "info", str(trunc), "--allow-no-trailer")
    assert rc == 0 and "config        (none)" in out


def test_replay_trace_text(capsys):
    rc, out, err = run(capsys, "replay", PER8, "--trace", TRACE, "--steps", "1", "--layers",
                       "0:2,11", "--no-progress")
    assert rc == 0, err
    assert "data       trace " in out and "smollm2_prose" in out and "tiled mod 276" in out
    assert "check      all 36 rows match the CSV" in out
    step1 = next(line for line in out.splitlines() if line.split()[:1] == ["1"])
    assert step1.split()[:5] == ["1", "36", "994", str(12 * (921 + 716 + 102)), "58.32"]


def test_replay_synthetic_json_and_jobs(capsys, tmp_path):
    out_file = tmp_path / "jobs.jsonl"
    rc, out, err = run(capsys, "replay", MEDIUM_HP, "--synthetic", "7", "--steps", "2",
                       "--layers", "22", "--json", "--out", str(out_file), "--no-progress")
    assert rc == 0, err
    rep = json.loads(out)
    assert rep["ok"] and rep["jobs"] == 10 and rep["data_source"]["kind"] == "synthetic"
    assert "SYNTHETIC" in rep["data_label"]
    assert rep["total"]["keys"] == 3070 and rep["total"]["values"] == 920
    assert rep["steps"]["2"]["rows"] == 10
    recs = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert len(recs) == 10 and all(r["data"]["kind"] == "synthetic" for r in recs)
    assert "wrote 10 job descriptors" in err


def test_replay_bad_input_exits_2(capsys, tmp_path):
    assert run(capsys, "replay", PER8)[0] == 2  # neither --trace nor --synthetic
    rc, _, err = run(capsys, "replay", PER8, "--synthetic", "1", "--steps", "x")
    assert rc == 2 and "--steps 'x'" in err
    rc, _, err = run(capsys, "replay", PER8, "--synthetic", "1", "--steps", "40")
    assert rc == 2 and "matches no row" in err
    rc, _, err = run(capsys, "replay", PER8, "--trace", str(tmp_path / "none.safetensors"))
    assert rc == 2 and "cannot read" in err
    rc, _, err = run(capsys, "replay", "small", "--synthetic", "1", "--threads", "0")
    assert rc == 2
    rc, _, err = run(capsys, "replay", "small", "--synthetic", "1", "--protect", "3")
    assert rc == 2 and "--protect '3'" in err and "Traceback" not in err
    rc, _, err = run(capsys, "replay", "small", "--synthetic", "1", "--protect", "3,2000")
    assert rc == 2 and "protect" in err
    rc, _, err = run(capsys, "replay", "small", "--synthetic", "1", "--rescale-shift", "32")
    assert rc == 2 and "rescale shift 32" in err


def test_replay_with_protection_and_rescale_options(capsys, tmp_path):
    out = tmp_path / "jobs.jsonl"
    rc, text, _ = run(capsys, "replay", PER8, "--synthetic", "2", "--steps", "1:3", "--layers",
                      "0,11", "--protect", "4,8", "--rescale-shift", "2", "--out", str(out))
    assert rc == 0 and "match the CSV" in text
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    pruning = [r for r in recs if r["descriptor"]["token_keep"]]
    assert pruning and all((r["descriptor"]["protect_sink"], r["descriptor"]["protect_recent"])
                           == (4, 8) for r in pruning)
    assert [r["descriptor"]["imp_shift"] for r in recs if r["descriptor"]["imp_shift"]] == [2]


def test_replay_mismatch_exits_1(capsys, monkeypatch):
    real = wlmod.check_result

    def broken(pj, res, params=wlmod.DEFAULT_PARAMS):
        errs = real(pj, res, params)
        return errs + (["injected"] if pj.row.head == 1 else [])

    monkeypatch.setattr(wlmod, "check_result", broken)
    rc, out, _ = run(capsys, "replay", PER8, "--synthetic", "1", "--steps", "5", "--layers",
                     "7", "--no-progress")
    assert rc == 1
    assert "check      1 of 12 rows DIFFER from the CSV:" in out
    assert "(step 5, layer 7, head 1): injected" in out


def test_console_entry_point():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    p = subprocess.run([sys.executable, "-m", "spatten_dv.cli", "workload", "info", "small"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0 and "rows          1" in p.stdout
    p = subprocess.run([sys.executable, "-m", "spatten_dv.cli", "workload", "info", "nope"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2
