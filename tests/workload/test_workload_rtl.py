"""RTL replay of GPT-2 workload slices: hdl/spatten_core.v on Verilator against the model.

Two slices, q/K/V from traces/smollm2_prose.safetensors, 111 jobs in one simulation:

* summary-gpt2-small-wikitext2-per8, steps 0-2, layers 0 and 11 (72 jobs, n = 993..995):
  6-bit K MSB + 4-bit LSB planes with the row's LSB refetch decision (all, 5 of 12, none),
  6-bit V with local value pruning (v_topk 204/184/20), cascade token pruning through token_keep
  (994 -> 921 over importance the DUT accumulated in step 0, then 102) and the grow-back at
  step 2 (imp_shift 1 + reselect + token_keep 921: the kept set from the importance of every
  token, rescaled by the core).
* summary-gpt2-medium-wikitext2-...-hp-..., step 1, layers 15, 16 and 22 (39 jobs, n = 994):
  12-bit K, 8-bit V, 307 keys / 92 values, and cascade head pruning through head_keep
  (16 -> 13 -> 10 heads; the pruned heads get no job).

Every result field except cycles is compared with SpAttenCoreModel (tests/hdl/cocotb_core.py's
Bench), and every model result with its CSV row.
"""

import json
import sys
from pathlib import Path

from spatten_dv.sim import hdl_sources, run_cocotb
from spatten_dv.traces.workload import load_workload, shipped_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hdl"))
from test_core import SOURCES  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TRACE = str(REPO / "traces" / "smollm2_prose.safetensors")
SMALL = "summary-gpt2-small-wikitext2-per8.csv.gz"
MEDIUM_HP = "summary-gpt2-medium-wikitext2-per0-hp-step5+dedic+glob_p+local_p+hp+topk+quant.csv.gz"
SLICES = [
    {"csv": str(shipped_dir() / SMALL), "trace": TRACE, "steps": [0, 1, 2], "layers": [0, 11]},
    {"csv": str(shipped_dir() / MEDIUM_HP), "trace": TRACE, "steps": [1],
     "layers": [15, 16, 22]},
]


def test_workload_slices_rtl(tmp_path):
    result = tmp_path / "workload_rtl.json"
    run_cocotb(
        toplevel="spatten_core",
        sources=hdl_sources(*SOURCES),
        test_module="cocotb_workload",
        simulator="verilator",
        test_dir=Path(__file__).parent,
        extra_env={"WORKLOAD_SLICES": json.dumps(SLICES), "WORKLOAD_RESULT": str(result)},
    )
    res = json.loads(result.read_text())
    jobs = res["jobs"]
    # the DUT's counts are the CSV's, row by row (the cocotb side checked them through the
    # model; this checks the recorded DUT fields against the CSV directly)
    for i, spec in enumerate(SLICES):
        wl = load_workload(spec["csv"])
        rows = [r for r in wl.rows if r.step in spec["steps"] and r.layer in spec["layers"]]
        got = [j for j in jobs if j["slice"] == i]
        assert [(j["line"], j["keys"], j["values"], bool(j["lsb_fetched"])) for j in got] == \
            [(r.line, r.keys, r.values, r.requant) for r in rows]
    assert len(jobs) == 72 + 39
    small = [j for j in jobs if j["slice"] == 0]
    assert sum(j["lsb_fetched"] for j in small) == 41  # 12 + 5 + 12 + 0 + 12 + 0
    assert any("reselect" in j["actions"] and "imp_shift=1" in j["actions"] and j["step"] == 2
               for j in small)
    hp = [j for j in jobs if j["slice"] == 1]
    assert [a for j in hp for a in j["actions"] if a.startswith("head_keep")] == \
        ["head_keep=13", "head_keep=10"]
    for i in range(len(SLICES)):
        sel = [j for j in jobs if j["slice"] == i]
        print(f"RTL workload slice {i}: {len(sel)} jobs, {sum(j['keys'] for j in sel)} keys, "
              f"{sum(j['cycles'] for j in sel)} cycles")
    print(f"simulated in {res['wall_s']:.1f} s")
