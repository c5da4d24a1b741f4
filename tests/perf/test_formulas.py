"""Unit tests of the performance model's pieces: burst counting, the DRAM fit, the stage
formulas and the step aggregation (no simulator)."""

import math

import numpy as np
import pytest

from spatten_dv.models.descriptor import Status
from spatten_dv.models.perf.bursts import count_fetch
from spatten_dv.models.perf.configs import DEFAULT, PAPER
from spatten_dv.models.perf.dram import DramFit, calibrate
from spatten_dv.models.perf.layout_bytes import beats_per_token, fetch_beat_addresses
from spatten_dv.models.perf.shape import JobShape, Prune
from spatten_dv.models.perf.stages import (
    KEY_FETCH_START,
    SOFTMAX_TAIL,
    WIDE_PASS_EARLIER,
    accumulate_cycles,
    key_list_beats,
    scan_cycles,
    softmax_passes,
    topk_candidates,
    topk_cycles,
)
from spatten_dv.models.perf.steps import predict, predict_job

FIT = DramFit("test", 1, 64, latency=100.0, tx_cycles=4.0, peak_bytes_per_cycle=16.0)


def shape(m=100, nv=50, lsb=False, acc=True, prune=None, status=Status.OK, step=0):
    keys = np.arange(m, dtype=np.int64)
    return JobShape(step=step, label="t", status=int(status), n_tokens=m, clear=False,
                    head_prune=None, token_prune=prune, keys=keys,
                    values=np.arange(0, 2 * nv, 2, dtype=np.int64)[:nv],
                    v_select=nv < m, lsb_fetched=lsb, msb_bits=8, lsb_bits=4, v_bits=8,
                    k_msb_base=0x10000, k_lsb_base=0x20000, v_base=0x30000, acc_tokens=acc)


def test_layout_beats_and_addresses():
    assert [beats_per_token(w) for w in (0, 4, 6, 8, 12)] == [0, 1, 2, 2, 3]
    a = fetch_beat_addresses(0x1000, [0, 2], 12)
    assert a.tolist() == [0x1000, 0x1020, 0x1040, 0x1000 + 192, 0x1000 + 224, 0x1000 + 256]


def test_bursts_contiguous_split_at_16_and_pages():
    a = np.arange(40, dtype=np.int64) * 32  # 40 contiguous beats from 0
    c = count_fetch(a)
    assert (c.beats, c.bursts, c.transactions) == (40, 3, 20)
    # a 4 KiB page start opens a new burst even when contiguous
    b = 4096 - 64 + np.arange(4, dtype=np.int64) * 32
    assert count_fetch(b).bursts == 2


def test_bursts_sparse_tokens_pay_whole_transactions():
    a = fetch_beat_addresses(0, np.arange(0, 20, 2), 4)  # 1-beat tokens, every other one
    c = count_fetch(a)
    assert (c.beats, c.bursts, c.transactions) == (10, 10, 10)  # 64 B read per 32 B used
    assert count_fetch(a, tx_bytes=32).transactions == 10


def test_fetch_time_bandwidth_or_beat_bound():
    assert FIT.fetch_cycles(0, 0) == 0
    assert FIT.fetch_cycles(100, 50) == 100 + 200  # DRAM bound: 50 tx x 4 cycles
    assert FIT.fetch_cycles(100, 10) == 100 + 100  # one beat per cycle
    assert FIT.fetch_cycles(100, 10, r_beats_per_cycle=4) == 100 + 40


def test_dram_calibration_ideal_and_ddr4():
    ideal = calibrate("ideal", 1)
    assert ideal.peak_bytes_per_cycle == math.inf and 20 <= ideal.latency <= 60
    ddr4 = calibrate("DDR4_2400R", 1)
    # 64 B per nBL = 4 cycles at best: the sustained rate is below the pin rate
    assert ddr4.peak_bytes_per_cycle == 16
    assert 4.0 < ddr4.tx_cycles < 7.0


def test_scan_and_topk_formulas():
    assert scan_cycles(0) == 2 and scan_cycles(100) == 104
    assert topk_cycles(100, 0) == topk_cycles(100, 100) == topk_cycles(100, 150) == 0
    assert topk_candidates(1000, 500) == pytest.approx(3386, abs=1)
    small, large = topk_cycles(256, 128), topk_cycles(512, 256)
    assert 1.8 < large / small < 2.2  # about linear in n
    assert topk_cycles(256, 128, comparators=32) < small


def test_stage_breakdown_of_a_job():
    p = predict_job(shape(m=100, nv=50), DEFAULT, FIT)
    st = p.stages
    # the K MSB fetch starts with the key list's first entries and follows the scan
    assert st["key_scan"] == 1 + KEY_FETCH_START
    # K MSB: 100 8-bit tokens x 2 beats, contiguous: 100 tx of 64 B at 4 cycles
    # softmax: 8 lanes, two passes of 13 beats, 3 adder-tree registers, the score gearbox
    assert st["k_msb"] == pytest.approx(100 + 400 + 6 + (26 + 3 + 1) + SOFTMAX_TAIL)
    one_lane = predict_job(shape(m=100, nv=50), DEFAULT.with_(softmax_lanes=1), FIT).stages
    assert one_lane["k_msb"] == pytest.approx(100 + 400 + 6 + 200 + SOFTMAX_TAIL)
    assert st["k_lsb"] == 0 and st["accumulate"] == 100
    assert st["v_select"] == math.ceil(100 / 8) + topk_cycles(100, 50)  # stage B: VLOAD + top-k
    assert p.beats == 100 * 2 + 50 * 2 and p.bytes == 32 * p.beats
    assert p.ops == 2 * 64 * (100 + 50)
    with_lsb = predict_job(shape(m=100, nv=50, lsb=True), DEFAULT, FIT)
    assert with_lsb.stages["k_lsb"] > 0 and with_lsb.cycles > p.cycles
    assert with_lsb.beats == p.beats + 100


def test_prune_and_skipped_head():
    pr = predict_job(shape(prune=Prune(200, 150)), DEFAULT, FIT)
    assert pr.stages["prune"] == 1 + scan_cycles(200) + 1 + topk_cycles(200, 150)
    skipped = predict_job(shape(status=Status.HEAD_SKIPPED), DEFAULT, FIT)
    assert skipped.beats == 0 and skipped.cycles < 10
    bad = predict_job(shape(status=Status.BAD_WIDTH), DEFAULT, FIT)
    assert bad.cycles == 2 and bad.ops == 0


def test_paper_config_is_faster_and_built():
    # both configurations are RTL builds (--config paper); a sweep's other points are predictions
    from spatten_dv.commands.perf import swept

    assert DEFAULT.built and PAPER.built and "PREDICTION" not in PAPER.label
    assert swept(PAPER, "channels", 8) is PAPER
    assert "PREDICTION" in swept(PAPER, "channels", 4).label
    assert swept(PAPER, "channels", 4).r_beats_per_cycle == 4
    shapes = [shape(m=300, nv=150, step=s) for s in (0, 0, 1)]
    _, d = predict(shapes, DEFAULT)
    _, p = predict(shapes, PAPER)
    assert sorted(d) == [0, 1] and d[0].jobs == 2
    assert p[0].cycles < d[0].cycles / 2
    assert d[0].gops_at_1ghz == pytest.approx(d[0].ops / d[0].cycles)
    assert d[0].bound_ratio(16.0) == pytest.approx(d[0].cycles / (d[0].bytes / 16.0))


def test_wide_key_list_scan_beats():
    # up to KL kept entries a beat from the current and the next non-empty 32-entry chunk
    assert key_list_beats(np.arange(100), 1) == 100
    assert key_list_beats(np.arange(64), 8) == 8  # consecutive: KL a beat
    assert key_list_beats(np.array([0, 40, 80, 120]), 8) == 2  # chunks 0+1, then 2+3
    assert key_list_beats(np.array([0, 1, 100, 200]), 8) == 2  # chunk 0 + chunk 3, then 6
    assert key_list_beats(np.array([], dtype=np.int64), 8) == 0


def test_wide_accumulation_bank_conflicts():
    # groups of KL consecutive key-list entries, as many cycles as the most used bank
    assert accumulate_cycles(np.arange(100), 1) == 100
    assert accumulate_cycles(np.arange(64), 8) == 8  # distinct banks: a group a cycle
    assert accumulate_cycles(np.arange(0, 64, 8), 8) == 8  # one bank: an entry a cycle
    assert accumulate_cycles(np.array([0, 2, 4, 6, 8, 10, 12, 14]), 8) == 2


def test_paper_stage_formulas_follow_the_wide_datapath():
    fit = FIT
    pr = predict_job(shape(m=256, prune=Prune(800, 256)), PAPER, fit)
    assert pr.stages["prune"] == 1 + scan_cycles(100) + 1 + topk_cycles(800, 256)
    assert pr.stages["accumulate"] == 32  # 256 consecutive keys, 8 a cycle
    d = predict_job(shape(m=256, prune=Prune(800, 256)), DEFAULT, fit)
    assert d.stages["prune"] == 1 + scan_cycles(800) + 1 + topk_cycles(800, 256)
    assert d.stages["accumulate"] == 256
    # aligned 8-key beats go straight into the softmax: no gearbox cycle
    assert softmax_passes(64, 8, 8) == 2 * 8 + 3 - WIDE_PASS_EARLIER
    assert softmax_passes(64, 8, 1) == 2 * 8 + 3 + 1
    from dataclasses import replace as dc_replace

    base = shape(m=64)
    plain = predict_job(dc_replace(base, clear=True), PAPER, fit).stages["control"]
    rescaled = predict_job(dc_replace(base, clear=True, rescale=True), PAPER, fit)
    assert rescaled.stages["control"] - plain == 1024 / 8 + 1
