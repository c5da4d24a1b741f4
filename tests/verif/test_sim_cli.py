"""`spatten-dv sim`: GPT-2 workload slices on the RTL core behind the DRAM model (Verilator)."""

import json

import pytest
import torch

from spatten_dv.cli import main
from spatten_dv.models.core import SpAttenCoreModel
from spatten_dv.models.descriptor import Job
from spatten_dv.models.layout import write_head
from spatten_dv.models.memory import DramImage
from spatten_dv.traces.workload import load_workload, resolve_workload
from spatten_dv.verif.core_scoreboard import compare_result

PER8 = "summary-gpt2-small-wikitext2-per8"


def sim(capsys, tmp_path, *argv):
    rc = main(["sim", *argv, "--out", str(tmp_path), "--json"])
    out = capsys.readouterr().out
    jobs = [json.loads(x) for x in (tmp_path / "jobs.jsonl").read_text().splitlines()]
    return rc, json.loads(out), jobs


def test_per8_slice_two_channels_ddr4(capsys, tmp_path):
    rc, summary, jobs = sim(capsys, tmp_path, PER8, "--steps", "1", "--layers", "10:12",
                            "--channels", "2", "--dram", "DDR4_2400R")
    assert rc == 0 and summary["failure"] is None and summary["mismatches"] == 0
    rows = [r for r in load_workload(resolve_workload(PER8)).rows
            if r.step == 1 and r.layer in (10, 11)]
    assert [(j["line"], j["keys"], j["values"], bool(j["lsb_fetched"])) for j in jobs] == \
        [(r.line, r.keys, r.values, r.requant) for r in rows]
    total = summary["total"]
    assert total["jobs"] == len(rows) == 24
    assert total["bytes"] == 32 * sum(j["beats"] for j in jobs)
    # 64-byte DRAM transactions: two 32-byte beats each
    assert total["dram_reads"] == total["beats"] // 2
    assert all(j["cycles"] > j["beats"] / 2 for j in jobs)  # two channels: <= 2 beats/cycle


def test_ideal_memory_one_dense_job(capsys, tmp_path):
    rc, summary, jobs = sim(capsys, tmp_path, "small", "--dram", "ideal", "--ideal-latency",
                            "30")
    assert rc == 0 and len(jobs) == 1
    assert jobs[0]["keys"] == jobs[0]["values"] == 993  # small.csv: one dense 993-token row


@pytest.mark.parametrize("argv, message", [
    (["no-such-workload"], "not a shipped workload"),
    (["small", "--dram", "DDR9"], "--dram 'DDR9'"),
    (["small", "--steps", "7"], "match no row"),
    (["small", "--channels", "0"], "--channels must be 1..8"),
    (["small", "--trace", "/no/such.safetensors"], "no such trace file"),
])
def test_bad_input_is_one_line_and_runs_nothing(capsys, tmp_path, argv, message):
    assert main(["sim", *argv, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "jobs.jsonl").exists()


def test_scoreboard_fires_on_each_kind_of_difference():
    gen = torch.Generator().manual_seed(7)
    k = torch.randint(-2048, 2048, (40, 64), generator=gen)
    v = torch.randint(-2048, 2048, (40, 64), generator=gen)
    mem = DramImage()
    pb = write_head(mem, 0x10000, k, v, 8, 4, 8)
    job = Job(query=torch.randint(-2048, 2048, (64,), generator=gen), n_tokens=40,
              k_msb_base=pb.k_msb_base, k_lsb_base=pb.k_lsb_base, v_base=pb.v_base,
              msb_bits=8, lsb_bits=4, v_bits=8, score_mult=300, score_shift=20, v_topk=9)
    ref = SpAttenCoreModel().run_job(job, mem)
    good = dict(job_id=ref.job_id, status=int(ref.status), lsb_fetched=int(ref.lsb_fetched),
                max_prob_msb=ref.max_prob_msb, max_prob=ref.max_prob, n_keys=ref.n_keys,
                n_values=ref.n_values, beats=ref.beats, cycles=123,
                out=[int(x) for x in ref.out.tolist()])
    assert compare_result(good, ref) == []
    for name in ("status", "lsb_fetched", "max_prob_msb", "max_prob", "n_keys", "n_values",
                 "beats"):
        bad = dict(good, **{name: good[name] + 1})
        assert [e.split(":")[0] for e in compare_result(bad, ref)] == [name]
    assert compare_result(dict(good, beats=0), ref, check_beats=False) == []
    out = list(good["out"])
    out[5] += 1
    (err,) = compare_result(dict(good, out=out), ref)
    assert err.startswith("out differs at [5]")
