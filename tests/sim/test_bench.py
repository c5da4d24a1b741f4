"""`spatten-dv bench`: the figures' arithmetic, and the bare Verilator harness against the model.

The bare harness test builds spatten_core with the C++ harness (about 35 s of CPU) and replays
a few GPT-2 per8 jobs: every result must match the reference model bit for bit, and a result
changed in the job file must be reported as a mismatch (the check can fail).
"""

import json

import pytest

from spatten_dv import bare
from spatten_dv.bench_figures import (
    cycles_over_bound,
    dram_peak_bytes_per_cycle,
    kv_bytes_reduction,
    step_totals,
    topk_formula_cycles,
)
from spatten_dv.commands.bench import summarize
from spatten_dv.models.core import SpAttenCoreModel
from spatten_dv.models.descriptor import (
    OVERLAP_COUNTERS,
    STAGE_COUNTERS,
    result_fields,
    unpack_fields,
)
from spatten_dv.models.params import DEFAULT_PARAMS


def test_dram_peak_follows_the_preset():
    # DDR4: 64-byte transactions, 4-cycle bursts; HBM2 pseudo-channel: 32 B, 2 cycles, two
    # pseudo-channels per channel (the perf model's peak too)
    from spatten_dv.models.perf.dram import _memory

    assert dram_peak_bytes_per_cycle("DDR4_2400R") == 16.0
    assert dram_peak_bytes_per_cycle("DDR4_2400R", channels=2) == 32.0
    assert dram_peak_bytes_per_cycle("HBM2_2000Mbps") == 32.0
    assert dram_peak_bytes_per_cycle("HBM2_2000Mbps", channels=8) == 256.0
    for dram, ch in (("DDR4_2400R", 1), ("HBM2_2000Mbps", 8)):
        assert dram_peak_bytes_per_cycle(dram, ch) == _memory(dram, ch, 20)[2]
    assert dram_peak_bytes_per_cycle("ideal") == 32.0


def test_ratios():
    assert cycles_over_bound(1150, 16000, 16.0) == pytest.approx(1.15)
    assert cycles_over_bound(10, 0, 16.0) is None
    assert topk_formula_cycles(1) == 4 and topk_formula_cycles(17) == 5
    assert kv_bytes_reduction(108, 10) == pytest.approx(10.8)
    assert kv_bytes_reduction(1, 0) is None


def test_decode_runs_each_configuration_on_its_memory_system():
    from spatten_dv.commands.bench import decode_memory

    assert decode_memory("default") == {"dram": "DDR4_2400R", "channels": 1,
                                        "config": "default"}
    assert decode_memory("paper") == {"dram": "HBM2_2000Mbps", "channels": 8,
                                      "config": "paper"}


def test_step_totals_span_first_accept_to_last_result():
    recs = [{"step": 1, "beats": 10, "cycles": 50, "accept_cycle": 100, "result_cycle": 150},
            {"step": 1, "beats": 5, "cycles": 30, "accept_cycle": 152, "result_cycle": 182},
            {"step": 2, "beats": 1, "cycles": 9, "accept_cycle": 190, "result_cycle": 199}]
    s = step_totals(recs)
    assert s[1] == {"jobs": 2, "bytes": 15 * 32, "cycles": 80, "span": 83}
    assert s[2]["span"] == 10


def test_summary_keys_and_worst_case():
    speed = {"bare": {"cycles_per_s": 200_000}, "env": {"cycles_per_s": 50_000}}
    decode = [{"case": "decode/default per8 s1 lall", "cycles_over_bound": 1.3, "jobs": 144,
               "cycles": 600_000, "cycles_per_s": 40_000, "config": "default"},
              {"case": "decode/default smollm2_prose s0 lall", "cycles_over_bound": 1.5,
               "config": "default"},
              {"case": "decode/default+MOP4CLXOR per8 s1 lall", "cycles_over_bound": 1.2,
               "config": "default+MOP4CLXOR"},
              {"case": "decode/paper per8 s1 lall", "cycles_over_bound": 1.4,
               "config": "paper", "dram": "HBM2_2000Mbps", "channels": 8}]
    s = summarize(speed, decode, {"topk_cycles_over_formula": 1.05},
                  {"per8_kv_bytes_reduction": 11.0}, None, quick=True)
    for key in ("decode_cycles_over_bound", "topk_cycles_over_formula",
                "per8_kv_bytes_reduction", "bare_cycles_per_s", "env_cycles_per_s",
                "env_over_bare", "gpt2_small_workload_wall_s"):
        assert key in s
    # the worst case of both configurations (the default DRAM mapping)
    assert s["decode_cycles_over_bound"] == 1.5
    assert s["configurations"]["default+MOP4CLXOR"]["decode_cycles_over_bound"] == 1.2
    assert s["env_over_bare"] == pytest.approx(0.25)
    paper = s["configurations"]["paper"]
    assert paper["decode_cycles_over_bound"] == 1.4
    assert (paper["dram"], paper["channels"]) == ("HBM2_2000Mbps", 8)
    decode[-1]["cycles_over_bound"] = 1.7  # now the paper step is the worst
    assert summarize(speed, decode, None, None, None, quick=True)[
        "decode_cycles_over_bound"] == 1.7
    assert s["gpt2_small_workload_wall_s_extrapolated"] == pytest.approx(15 * 32, rel=1e-3)
    json.dumps(s)


def per8_plan(seed: int, step: int):
    """Layer 0 of one per8 step on synthetic K/V/q: the jobs the bare harness tests use."""
    from spatten_dv.traces.workload import (
        SyntheticSource,
        build_jobs,
        load_workload,
        resolve_workload,
    )

    wl = load_workload(resolve_workload("summary-gpt2-small-wikitext2-per8"))
    return build_jobs(wl, SyntheticSource(seed=seed), steps={step}, layers={0})


def test_expected_word_masks_cycles_only():
    plan = per8_plan(seed=3, step=0)
    ref = SpAttenCoreModel().run_job(plan.jobs[0].job, plan.memory)
    word, mask = bare.expected_word(ref)
    layout = result_fields(DEFAULT_PARAMS)
    got = unpack_fields(word, layout)
    m = unpack_fields(mask, layout)
    timing = {"cycles", *STAGE_COUNTERS, *OVERLAP_COUNTERS}  # cycle figures: not modelled
    assert all(m[n] == 0 for n in timing)
    assert all(m[n] == (1 << w) - 1 for n, w in layout if n not in timing)
    assert got["n_keys"] == ref.n_keys and got["beats"] == ref.beats


@pytest.fixture(scope="module")
def per8_job_file(tmp_path_factory):
    plan = per8_plan(seed=5, step=3)
    jobs = [pj.job for pj in plan.jobs[:4]]
    path = tmp_path_factory.mktemp("bare") / "per8.jobs"
    bare.write_job_file(path, jobs, plan.memory, latency=7)
    return path


def test_bare_harness_matches_the_model_and_catches_a_change(per8_job_file):
    exe = bare.build()
    good = bare.run(exe, per8_job_file)
    assert good["jobs"] == 4 and good["mismatches"] == 0 and good["cycles"] > 0, good
    assert good["latency"] == 7
    # flip one expected bit of job 2's n_keys: the harness must report that job
    lines = per8_job_file.read_text().splitlines()
    i = [k for k, ln in enumerate(lines) if ln.startswith("job ")][2]
    _, desc, exp, mask = lines[i].split()
    pos = sum(w for n, w in result_fields(DEFAULT_PARAMS)[:5])  # n_keys' offset
    lines[i] = f"job {desc} {int(exp, 16) ^ (1 << pos):x} {mask}"
    bad_file = per8_job_file.with_name("bad.jobs")
    bad_file.write_text("\n".join(lines) + "\n")
    bad_file.with_name("bad.jobs.bin").write_bytes(
        per8_job_file.with_name("per8.jobs.bin").read_bytes())
    bad = bare.run(exe, bad_file)
    assert bad["mismatches"] == 1 and "job 2" in bad["errors"][0], bad
