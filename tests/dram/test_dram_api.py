"""The model's parts and interfaces: event skipping is exact, the incremental (externally
clocked) interface matches the trace driver, channels, address mappers, trace files, configs,
and the ideal memory."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from spatten_dv.models.dram import (
    ConfigError,
    IdealMemory,
    MemorySystem,
    SystemConfig,
    Trace,
    TraceError,
    ramulator_config,
    read_trace,
    run_trace,
)
from spatten_dv.models.dram.address_mapper import ChannelMapper, make_mapper
from spatten_dv.models.dram.device import INF
from spatten_dv.models.dram.validation import REFERENCE_DIR, load_trace


def head(trace: Trace, n: int) -> Trace:
    return Trace(trace.name, trace.is_write[:n], trace.addrs[:n])


def same_result(a, b) -> None:
    assert np.array_equal(a.arrive, b.arrive)
    assert np.array_equal(a.depart, b.depart)
    assert a.stats.to_dict() == b.stats.to_dict()


# ---- event skipping is exact ----------------------------------------------------------------

@pytest.mark.parametrize("standard,preset,tx", [("DDR4", "DDR4_2400R", 64),
                                                ("HBM2", "HBM2_2000Mbps", 32)])
@pytest.mark.parametrize("row_policy", ["Open", "ClosedCAP"])
def test_skipping_idle_cycles_changes_nothing(standard, preset, tx, row_policy):
    """Against a controller that processes every cycle, as Ramulator does; the mixed trace
    exercises write mode, refresh (past nREFI) and the row policy."""
    trace = head(load_trace(f"traces/mixed_seq_r90w10_{tx}B.trace.gz"), 3000)
    config = SystemConfig.from_presets(standard, preset, refresh="AllBank",
                                       row_policy=row_policy)
    fast = MemorySystem(config).run_trace(trace)
    slow = MemorySystem(config, skip_idle_cycles=False).run_trace(trace)
    assert fast.stats.cycles > config.dram.timings["nREFI"]
    same_result(fast, slow)


request_lists = st.lists(
    st.tuples(st.booleans(), st.integers(0, 3), st.integers(0, 3), st.integers(0, 3),
              st.integers(0, 7)),
    min_size=1, max_size=60)


def to_trace(requests, standard: str) -> Trace:
    """(is_write, bank group, bank, row, column) -> addresses in few banks and rows, to force
    hits, conflicts, write mode switches and refresh interactions."""
    addrs = []
    for _, bg, bank, row, col in requests:
        if standard == "DDR4":
            addrs.append((row << 17) | (bank << 15) | (bg << 13) | (col << 6))
        else:
            addrs.append((row << 15) | (bank << 13) | (bg << 11) | ((col & 1) << 10)
                         | ((col >> 1) << 5))
    return Trace("random", np.array([r[0] for r in requests], dtype=bool),
                 np.array(addrs, dtype=np.int64))


@settings(max_examples=40, deadline=None)
@given(requests=request_lists, standard=st.sampled_from(["DDR4", "HBM2"]),
       row_policy=st.sampled_from(["Open", "ClosedCAP"]),
       scheduler=st.sampled_from(["FRFCFS", "FCFS"]),
       arrival=st.sampled_from(["one_per_cycle", "all_at_0"]))
def test_skipping_is_exact_on_random_streams(requests, standard, row_policy, scheduler,
                                             arrival):
    preset = {"DDR4": "DDR4_2400R", "HBM2": "HBM2_2000Mbps"}[standard]
    config = SystemConfig.from_presets(standard, preset, refresh="AllBank",
                                       row_policy=row_policy, scheduler=scheduler,
                                       read_buffer_size=4, write_buffer_size=4)
    trace = to_trace(requests, standard)
    same_result(MemorySystem(config).run_trace(trace, arrival),
                MemorySystem(config, skip_idle_cycles=False).run_trace(trace, arrival))


# ---- incremental interface ------------------------------------------------------------------

def drive_one_per_cycle(memory, trace: Trace) -> tuple[list, list]:
    """Ramulator's trace frontend, written against the incremental interface."""
    kinds, addrs = trace.is_write.tolist(), trace.addrs.tolist()
    done = {}
    i = 0
    while i < len(addrs) or memory.busy:
        if i < len(addrs):
            req = memory.try_send(addrs[i], kinds[i], tag=i)
            if req is not None:
                i += 1
        for req in memory.pop_completions():
            assert req.depart <= memory.now
            done[req.tag] = (req.arrive, req.depart)
        memory.step()
    return [done[k][0] for k in range(len(addrs))], [done[k][1] for k in range(len(addrs))]


@pytest.mark.parametrize("standard,preset,tx", [("DDR4", "DDR4_2400R", 64),
                                                ("HBM2", "HBM2_2000Mbps", 32)])
def test_incremental_interface_matches_trace_driver(standard, preset, tx):
    trace = head(load_trace(f"traces/mixed_seq_r90w10_{tx}B.trace.gz"), 1500)
    config = SystemConfig.from_presets(standard, preset, refresh="AllBank")
    batch = run_trace(config, trace)
    arrive, depart = drive_one_per_cycle(MemorySystem(config), trace)
    assert arrive == batch.arrive.tolist()
    assert depart == batch.depart.tolist()


def test_incremental_sleep_until_next_event():
    config = SystemConfig.from_presets("DDR4", "DDR4_2400R", refresh="NoRefresh")
    memory = MemorySystem(config)
    assert memory.next_event_cycle() == INF and not memory.busy
    req = memory.try_send(0x1000, tag="a")
    assert req is not None and req.arrive == 0
    wakes = []
    while memory.busy:
        t = memory.next_event_cycle()
        wakes.append(t)
        memory.advance_to(t)
        completed = memory.pop_completions()
        if completed:
            assert [r.tag for r in completed] == ["a"] and completed[0].depart == t == 37
    # ACT at 1; cycle 2 is looked at (the cycle after a command always is), then the RD at 17
    # and the data return at 37: the cycles in between are never simulated.
    assert wakes == [1, 2, 17, 37]
    with pytest.raises(ValueError):
        memory.advance_to(3)
    with pytest.raises(ValueError):
        memory.advance_to(INF)


def test_full_queue_rejects_until_a_slot_frees():
    config = SystemConfig.from_presets("DDR4", "DDR4_2400R", refresh="NoRefresh",
                                       read_buffer_size=2)
    memory = MemorySystem(config)
    assert memory.try_send(0 << 17) and memory.try_send(1 << 17)
    assert memory.try_send(2 << 17) is None  # read queue full
    assert memory.try_send(64, is_write=True) is not None  # the write queue is separate
    memory.advance_to(1)  # first ACT: the request moves to the active buffer
    assert memory.try_send(2 << 17) is not None


# ---- channels -------------------------------------------------------------------------------

def test_channel_mapper_strips_the_channel_bits():
    mapper = ChannelMapper(4, 64)
    assert mapper.split(0) == (0, 0)
    assert mapper.split(64) == (1, 0)
    assert mapper.split(3 * 64 + 5) == (3, 5)
    assert mapper.split(4 * 64) == (0, 64)
    addrs = np.arange(0, 1 << 16, 40, dtype=np.int64)
    ch, local = mapper.split_many(addrs)
    assert [mapper.split(a) for a in addrs.tolist()] == list(zip(ch.tolist(), local.tolist(),
                                                                 strict=True))


def test_one_busy_channel_behaves_like_a_single_channel():
    trace = head(load_trace("traces/rand_1GiB_64B.trace.gz"), 2000)
    on_channel_0 = Trace("ch0", trace.is_write, trace.addrs & ~np.int64(64))
    two = SystemConfig.from_presets("DDR4", "DDR4_2400R", channels=2, refresh="NoRefresh")
    one = SystemConfig.from_presets("DDR4", "DDR4_2400R", channels=1, refresh="NoRefresh")
    split = run_trace(two, on_channel_0)
    stripped = ChannelMapper(2, 64).split_many(on_channel_0.addrs)[1]
    single = run_trace(one, Trace("stripped", trace.is_write, stripped))
    assert np.array_equal(split.depart, single.depart)
    assert split.stats.channels[1].reads == 0


def test_two_channels_share_a_stream():
    trace = load_trace("traces/seq_stream_2MiB_64B.trace.gz")
    one = run_trace(SystemConfig.from_presets("DDR4", "DDR4_2400R"), trace).stats
    two = run_trace(SystemConfig.from_presets("DDR4", "DDR4_2400R", channels=2), trace).stats
    assert [c.reads for c in two.channels] == [len(trace) // 2] * 2
    assert two.cycles < 0.75 * one.cycles
    assert two.bandwidth_GBps > 1.3 * one.bandwidth_GBps


# ---- address mappers ------------------------------------------------------------------------

def test_ro_ba_ra_co_ch_fields():
    ddr4 = make_mapper("RoBaRaCoCh", SystemConfig.from_presets("DDR4", "DDR4_2400R").dram)
    # [rank, bank group, bank, row, column]
    assert ddr4.map(0x1FC0) == [0, 0, 0, 0, 127]
    assert ddr4.map(1 << 13) == [0, 1, 0, 0, 0]
    assert ddr4.map(1 << 15) == [0, 0, 1, 0, 0]
    assert ddr4.map(128 << 10) == [0, 0, 0, 1, 0]  # 128 KiB stride: same bank, next row
    hbm2 = make_mapper("RoBaRaCoCh", SystemConfig.from_presets("HBM2", "HBM2_2000Mbps").dram)
    # [pseudo-channel, bank group, bank, row, column]
    assert hbm2.map(1 << 10) == [1, 0, 0, 0, 0]
    assert hbm2.map(8 << 10) == [0, 0, 1, 0, 0]  # 8 KiB stride: banks of BG0 in PC0


def test_ch_ra_ba_ro_co_fields():
    ddr4 = make_mapper("ChRaBaRoCo", SystemConfig.from_presets("DDR4", "DDR4_2400R").dram)
    assert ddr4.map(1 << 13) == [0, 0, 0, 1, 0]  # row right above the column
    assert ddr4.map(1 << 29) == [0, 0, 1, 0, 0]
    assert ddr4.map(1 << 31) == [0, 1, 0, 0, 0]


@pytest.mark.parametrize("name", ["RoBaRaCoCh", "ChRaBaRoCo", "MOP4CLXOR"])
def test_scalar_and_vector_mapping_agree(name):
    for standard, preset in (("DDR4", "DDR4_2400R"), ("HBM2", "HBM2_2000Mbps")):
        mapper = make_mapper(name, SystemConfig.from_presets(standard, preset).dram)
        addrs = np.random.default_rng(7).integers(0, 1 << 33, 500, dtype=np.int64)
        columns = mapper.map_many(addrs)
        for i, a in enumerate(addrs.tolist()):
            assert mapper.map(a) == [int(c[i]) for c in columns]


def test_mop4clxor_groups_four_lines_then_xors_the_bank_bits():
    mapper = make_mapper("MOP4CLXOR", SystemConfig.from_presets("DDR4", "DDR4_2400R").dram)
    fields = [mapper.map(64 * i) for i in range(8)]  # [rank, bank group, bank, row, column]
    assert [f[4] for f in fields] == [0, 1, 2, 3, 0, 1, 2, 3]  # 4 lines per column chunk
    # Before the XOR, lines 0-3 share bank group 0 and lines 4-7 bank group 1; the low
    # column bits are then XORed into the bank-group field (as Ramulator 2.1 does).
    assert [f[1] ^ (f[4] & 3) for f in fields] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert {f[3] for f in fields} == {0}


# ---- trace files ----------------------------------------------------------------------------

def test_read_trace_plain_and_gzip(tmp_path):
    text = "# header\nLD 0x40\n\nST 0x80\nLD 256\n"
    plain = tmp_path / "t.trace"
    plain.write_text(text)
    zipped = tmp_path / "t.bin"  # gzip is detected from the content, not the name
    zipped.write_bytes(gzip.compress(text.encode()))
    for path in (plain, zipped):
        trace = read_trace(path)
        assert trace.addrs.tolist() == [0x40, 0x80, 256]
        assert trace.is_write.tolist() == [False, True, False]


@pytest.mark.parametrize("content,message", [
    ("LD 0x40\nLOAD 0x80\n", ":2: expected 'LD 0x<addr>'"),
    ("LD 0xZZ\n", ":1: bad address"),
    ("LD 0x40 extra\n", ":1: expected"),
    ("LD -5\n", ":1: bad address"),
    ("# nothing\n", "has no requests"),
    ("LD 0x" + "f" * 20 + "\n", "does not fit"),
])
def test_read_trace_errors_name_the_line(tmp_path, content, message):
    path = tmp_path / "bad.trace"
    path.write_text(content)
    with pytest.raises(TraceError, match=message.replace("(", r"\(")):
        read_trace(path)


def test_read_trace_missing_and_binary(tmp_path):
    with pytest.raises(TraceError, match="no such trace file"):
        read_trace(tmp_path / "missing.trace")
    binary = tmp_path / "b.trace"
    binary.write_bytes(b"LD 0x40\n\xff\xfe")
    with pytest.raises(TraceError, match=":2: not a text trace"):
        read_trace(binary)


# ---- configurations -------------------------------------------------------------------------

def yaml_config() -> dict:
    path = REFERENCE_DIR / "configs" / "DDR4_8Gb_x8-DDR4_2400R-AllBank-Open-RoBaRaCoCh.yaml"
    return yaml.safe_load(path.read_text())


def test_ramulator_yaml_with_two_channels():
    doc = yaml_config()
    controllers = doc["memory_system"]["controllers"]
    controllers.append(controllers[0])
    config = ramulator_config.from_document(doc)
    assert config.channels == 2 and config.controller.refresh == "AllBank"


@pytest.mark.parametrize("edit,message", [
    (lambda d: d["memory_system"]["controllers"][0]["scheduler"].update(impl="BLISS"),
     r"controllers\[0\]\.scheduler\.impl: 'BLISS' is not modelled"),
    (lambda d: d["memory_system"]["controllers"][0]["dram"].pop("timing"),
     r"dram\.timing: missing"),
    (lambda d: d["memory_system"]["controllers"][0]["dram"]["timing"].pop(),
     r"dram\.timing: DDR4 has 21 timing values"),
    (lambda d: d["memory_system"]["controllers"][0]["dram"]["timing_constraints"].append(
        [9, [0], [0], 1]), r"timing_constraints: entry 31"),
    (lambda d: d["memory_system"]["controllers"][0]["dram"].update(impl="LPDDR5"),
     r"dram\.impl: 'LPDDR5' is not modelled"),
    (lambda d: d["memory_system"].update(clock_ratio=2), r"clock_ratio"),
    (lambda d: d["memory_system"]["controllers"][0].update(read_buffer_size="big"),
     r"read_buffer_size: expected int"),
    (lambda d: d["memory_system"]["controllers"].extend([d["memory_system"]["controllers"][0]]
                                                        * 2), "power of two"),
])
def test_ramulator_yaml_errors_name_the_field(edit, message):
    doc = yaml_config()
    edit(doc)
    with pytest.raises(ConfigError, match=message):
        ramulator_config.from_document(doc, "cfg.yaml")


def test_ramulator_yaml_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        ramulator_config.load(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("memory_system: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml:.*not valid YAML"):
        ramulator_config.load(bad)
    bad.write_text("- just a list\n")
    with pytest.raises(ConfigError, match="config: expected a mapping"):
        ramulator_config.load(bad)


@pytest.mark.parametrize("kwargs,message", [
    (dict(standard="DDR5"), "unknown DRAM standard"),
    (dict(preset="DDR4_9999"), "unknown timing preset"),
    (dict(standard="HBM2", preset="DDR4_2400R"), "belongs to DDR4"),
    (dict(channels=3), "power of two"),
    (dict(refresh="PerBank"), "unknown refresh manager"),
    (dict(mapper="Foo"), "unknown address mapper"),
])
def test_preset_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SystemConfig.from_presets(**kwargs)


# ---- ideal memory ---------------------------------------------------------------------------

def test_ideal_memory_fixed_latency():
    memory = IdealMemory(read_latency=30, write_latency=2)
    a = memory.try_send(0x40, tag="r")
    memory.advance_to(1)
    b = memory.try_send(0x80, is_write=True, tag="w")
    assert memory.next_event_cycle() == 3
    memory.advance_to(3)
    assert [r.tag for r in memory.pop_completions()] == ["w"]
    memory.advance_to(memory.next_event_cycle())
    assert memory.now == 30 and [r.tag for r in memory.pop_completions()] == ["r"]
    assert (a.depart, b.depart) == (30, 3)
    trace = head(load_trace("traces/gather_v64B_64B.trace.gz"), 100)
    result = IdealMemory(read_latency=30).run_trace(trace)
    assert result.stats.cycles == 99 + 30 and result.stats.avg_read_latency == 30
