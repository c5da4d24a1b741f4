"""Units of the environment that need no simulator: config resolution, descriptor unpacking,
the scoreboard's comparison, the tier list, and the `spatten-dv sim` input checks."""

import pytest
import torch

from spatten_dv.cli import main
from spatten_dv.models.core import SpAttenCoreModel
from spatten_dv.models.descriptor import Job
from spatten_dv.models.layout import write_head
from spatten_dv.models.memory import DramImage
from spatten_dv.regress import TestSpec, build_parameters, load_tiers, make_plan, stage_split
from spatten_dv.verif.config import ConfigError, EnvConfig
from spatten_dv.verif.descriptor_agent import job_from_packed
from spatten_dv.verif.scoreboard import compare_fields, expected_fields


def consistent_counters(ref) -> dict:
    """Stage counters that obey every rule of core_scoreboard.counter_errors for `ref`."""
    qk = ref.n_keys * (1 + int(ref.lsb_fetched))
    c = dict(cyc_fetch_wait=ref.beats, cyc_qk=qk, cyc_softmax=9, cyc_topk=9,
             cyc_v=ref.n_values, cyc_ctrl=9)
    return dict(c, cyc_fetch_busy=ref.beats + qk, cyc_fetch_stall=0, cycles=sum(c.values()))


def test_configuration_brings_its_memory_system_unless_a_knob_sets_it():
    cfg = EnvConfig.resolve(environ={}, spec={"config": "paper"})
    assert (cfg.dram, cfg.channels) == ("HBM2_2000Mbps", 8)
    assert cfg.sources["dram"] == "config paper"
    cfg = EnvConfig.resolve(environ={}, spec={"config": "paper", "channels": 4, "dram": "ideal"})
    assert (cfg.dram, cfg.channels) == ("ideal", 4)
    assert EnvConfig.resolve(environ={}, spec={"config": "small"}).channels == 1


def test_stage_counter_rules_follow_keys_and_values_per_beat():
    """At 8 keys / values per beat (`paper`) a K pass takes ceil(m / 8) Q.K beats: counters of
    the one-key core are wrong there, and the paper's are wrong on the one-key core."""
    from spatten_dv.models.params import CONFIGURATIONS
    from spatten_dv.verif.core_scoreboard import counter_errors

    ref = _ref()
    paper = CONFIGURATIONS["paper"]
    one = consistent_counters(ref)
    qk8 = -(-ref.n_keys // 8) * (1 + int(ref.lsb_fetched))
    wide = dict(one, cyc_qk=qk8, cyc_ctrl=one["cyc_ctrl"] + one["cyc_qk"] - qk8)
    assert counter_errors(one, ref) == [] and counter_errors(wide, ref, paper) == []
    assert any("cyc_qk" in e for e in counter_errors(one, ref, paper))
    assert any("cyc_qk" in e for e in counter_errors(wide, ref))
    few_v = dict(wide, cyc_v=-(-ref.n_values // 8) - 1,
                 cyc_ctrl=wide["cyc_ctrl"] + wide["cyc_v"] - (-(-ref.n_values // 8) - 1))
    assert any("cyc_v" in e for e in counter_errors(few_v, ref, paper))


def test_config_resolution_order_and_sources():
    cfg = EnvConfig.resolve(plusargs={"jobs": "7"},
                            environ={"SPATTEN_JOBS": "8", "SPATTEN_DRAM": "ideal"},
                            spec={"jobs": 9, "dram": "HBM2_2000Mbps", "channels": 2})
    assert (cfg.jobs, cfg.dram, cfg.channels, cfg.trace) == (7, "ideal", 2, "smollm2_prose")
    assert cfg.sources["jobs"] == "plusarg" and cfg.sources["dram"] == "env"
    assert cfg.sources["channels"] == "spec" and cfg.sources["trace"] == "default"


@pytest.mark.parametrize("spec, message", [
    ({"channels": 3}, "channels=3"), ({"dram": "DDR9"}, "dram='DDR9'"),
    ({"res_ready_prob": 0}, "probability"), ({"nope": 1}, "unknown knob"),
    ({"state_check": "maybe"}, "boolean"), ({"config": "huge"}, "config='huge'"),
    ({"dram_mapper": "XOR"}, "dram_mapper='XOR'"),
])
def test_config_rejects_bad_knobs(spec, message):
    with pytest.raises(ConfigError, match=message):
        EnvConfig.resolve(environ={}, spec=spec)


def test_descriptor_unpack_is_pack_inverse():
    gen = torch.Generator().manual_seed(3)
    job = Job(query=torch.randint(-2048, 2048, (64,), generator=gen), n_tokens=777,
              k_msb_base=0x1234_5660, k_lsb_base=0x20, v_base=0xFFFF_FFE0, msb_bits=6,
              lsb_bits=6, v_bits=4, score_mult=65535, score_shift=63, requant_thresh=40000,
              v_topk=1024, token_keep=3, head_keep=31, clear_tokens=True, acc_heads=True,
              head_id=30, n_heads=32, job_id=65535)
    back = job_from_packed(job.pack(), job.params)
    assert back.pack() == job.pack() and torch.equal(back.query, job.query)
    assert back.clear_tokens is True and back.acc_tokens is False


def _ref():
    gen = torch.Generator().manual_seed(7)
    k = torch.randint(-2048, 2048, (40, 64), generator=gen)
    v = torch.randint(-2048, 2048, (40, 64), generator=gen)
    mem = DramImage()
    pb = write_head(mem, 0x10000, k, v, 8, 4, 8)
    job = Job(query=torch.randint(-2048, 2048, (64,), generator=gen), n_tokens=40,
              k_msb_base=pb.k_msb_base, k_lsb_base=pb.k_lsb_base, v_base=pb.v_base,
              msb_bits=8, lsb_bits=4, v_bits=8, score_mult=300, score_shift=20, v_topk=9)
    return SpAttenCoreModel().run_job(job, mem)


def test_scoreboard_compare_fires_on_each_field():
    ref = _ref()
    good = dict(expected_fields(ref), **consistent_counters(ref))
    assert compare_fields(good, ref) == []
    for name in ("job_id", "status", "lsb_fetched", "max_prob_msb", "max_prob", "n_keys",
                 "n_values", "beats"):
        bad = dict(good, **{name: good[name] ^ 1})
        assert [d[0] for d in compare_fields(bad, ref)] == [name]
    bad = dict(good, cyc_qk=good["cyc_qk"] + 1, cyc_ctrl=good["cyc_ctrl"] - 1)
    assert [d[0] for d in compare_fields(bad, ref)] == ["counters"]
    out = list(good["out"])
    out[17] += 1
    diffs = compare_fields(dict(good, out=out), ref)
    assert len(diffs) == 1 and diffs[0][0].startswith("out[17]")
    assert diffs[0][1:] == (good["out"][17], out[17])


def test_tiers_are_cumulative_and_valid():
    tiers, reseeds = load_tiers()
    smoke = {t.name for t in tiers["smoke"]}
    full = {t.name for t in tiers["full"]}
    assert smoke < full <= {t.name for t in tiers["nightly"]} and reseeds >= 1
    assert {"fault_corrupt_result", "fault_drop_result", "fault_wrong_lsb",
            "fault_wrong_topk"} <= smoke
    plan = make_plan(tiers["smoke"], ["verilator"], 5)
    assert len(plan) == len(tiers["smoke"]) and all(s == 5 for _, _, s in plan)
    assert len(make_plan(tiers["smoke"][:1], None, None, reseeds=2)) == 2 * 3


@pytest.mark.parametrize("argv, message", [
    (["--channels", "3"], "channels=3"),
    (["--dram", "DDR9"], "dram='DDR9'"),
    (["--trace", "/no/such.safetensors"], "no such file"),
    (["--test", "nope"], "not in tier smoke"),
    (["--sequence", "nope"], "unknown ['nope']"),
    (["--knob", "jobs"], "NAME=VALUE"),
    (["--workload", "no-such-workload"], "no-such-workload"),
    (["--trace", "smollm2_prose", "--steps", "99"], "outside"),
    (["--config", "nope"], "config='nope'"),
    (["--trace", "smollm2_prose", "--config", "small"], "head_dim 64"),
])
def test_bad_input_is_one_line_exit_2(capsys, tmp_path, argv, message):
    assert main(["sim", *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_corrupt_trace_is_rejected_before_building(capsys, tmp_path):
    bad = tmp_path / "t.safetensors"
    bad.write_bytes(b"\x0a\x00\x00\x00\x00\x00\x00\x00{not json}")
    assert main(["sim", "--trace", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_workload_selection_matching_no_row_is_rejected(capsys, tmp_path):
    argv = ["sim", "--workload", "summary-gpt2-small-wikitext2-per8", "--steps", "99",
            "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "match no row" in capsys.readouterr().err


def test_stage_split_names_the_bounding_stage():
    counts = dict(cyc_fetch_wait=50, cyc_qk=10, cyc_softmax=20, cyc_topk=5, cyc_v=5, cyc_ctrl=10,
                  cyc_fetch_stall=30)
    assert stage_split(counts) == ("bound by fetch: fetch 50% (stall 30%) qk 10% softmax 20% "
                                   "topk 5% v 5% ctrl 10%")
    assert stage_split(dict(counts, cyc_softmax=90)).startswith("bound by softmax:")
    assert stage_split({}) == ""


def test_build_parameters_follow_the_run_knobs():
    """`spatten-dv sim --sequence ... --channels 2` builds the core with N_CH = 2 (it built
    N_CH = 1 while the environment expected 2: every such run failed at start-up)."""
    adhoc = TestSpec(name="x", sequences="random", tier="adhoc")
    assert build_parameters(adhoc) == {"N_CH": 1}
    assert build_parameters(adhoc, {"channels": "2"}) == {"N_CH": 2}
    tiered = TestSpec(name="y", sequences="random", knobs={"channels": 4})
    assert build_parameters(tiered) == {"N_CH": 4}
    assert build_parameters(tiered, {"channels": 8}) == {"N_CH": 8}


def test_build_parameters_follow_the_configuration():
    """knob `config` builds the core with that configuration's Verilog parameters (and only
    those that differ from the defaults, so a default build keeps its folder)."""
    from spatten_dv.models.params import CONFIGURATIONS, verilog_parameters

    spec = TestSpec(name="z", sequences="random", knobs={"config": "small", "channels": 2})
    small = CONFIGURATIONS["small"]
    built = build_parameters(spec)
    assert built["N_CH"] == 2
    assert built["D"] == small.head_dim and built["L_MAX"] == small.max_tokens
    assert built["AXI_DW"] == small.axi_data_bits and built["QK_MULS"] == small.qk_multipliers
    assert verilog_parameters(CONFIGURATIONS["default"]) == {}
    assert set(verilog_parameters(small, only_changed=False)) == {
        "D", "L_MAX", "H_MAX", "QK_MULS", "PV_MULS", "TOPK_CMPS", "AXI_DW", "AW", "MAX_BURST",
        "SM_LANES"}


def test_environment_refuses_a_dut_of_another_configuration():
    """knob config=small on a default-built DUT: one clear error naming both widths."""
    from types import SimpleNamespace

    from spatten_dv.models.params import CONFIGURATIONS
    from spatten_dv.verif.uvm_tests import check_geometry

    default = SimpleNamespace(desc_data=[0] * 1012, res_data=[0] * 1411)
    check_geometry(default, CONFIGURATIONS["default"], "default")
    with pytest.raises(ValueError, match="config=small expects desc_data of"):
        check_geometry(default, CONFIGURATIONS["small"], "small")


def test_a_build_that_fails_is_a_one_line_failure_with_its_log(tmp_path):
    """A source that does not compile: SimulationFailed naming the build log, no traceback
    from the runner."""
    from spatten_dv.sim import SimulationFailed, run_cocotb

    bad = tmp_path / "broken.v"
    bad.write_text("module broken(input wire a); assign b = ; endmodule\n")
    with pytest.raises(SimulationFailed, match=r"icarus build of broken failed \(log: .*build.log"):
        run_cocotb(toplevel="broken", sources=[bad], test_module="cocotb_unused",
                   simulator="icarus", build_tag=str(tmp_path))


def test_axi_port_reads_a_channel_whatever_the_other_channels_hold():
    """AXI leaves an idle channel's ARADDR undefined: with 4-state simulators (Icarus) the
    flattened vector holds X there; the port reads the asked channel's field, and refuses an
    X in that field."""
    from types import SimpleNamespace

    from cocotb.types import LogicArray

    from spatten_dv.verif.axi_read_port import AxiReadPort

    class Pin(SimpleNamespace):
        def __len__(self):
            return len(self.value)

    pins = {f"m_axi_{n}": Pin(value=LogicArray("0" * 4))
            for n in AxiReadPort.AR_INPUTS + AxiReadPort.AR_OUTPUTS + AxiReadPort.R_INPUTS
            + AxiReadPort.R_OUTPUTS}
    dut = SimpleNamespace(_name="fake", **pins)
    port = AxiReadPort(dut, channels=2)
    dut.m_axi_araddr.value = LogicArray("XX0101")  # channel 1: XX0, channel 0: 101
    port.width["araddr"] = 3
    assert port.get("araddr", 0) == 5
    with pytest.raises(AssertionError, match="araddr of channel 1"):
        port.get("araddr", 1)
