"""Hand-computed timing tests, in the style of Ramulator 2's `device_timings` tests.

Each test issues a tiny request sequence and checks the exact command schedule (cycle and
command) and completion cycles worked out by hand from the JEDEC rules of the preset:

DDR4-2400R: nCL 16, nRCD 16, nRP 16, nRAS 39, nRC 55, nRTP 9, nCWL 12, nBL 4, nCCDS 4, nCCDL 6,
nRRDS 4, nRRDL 6, nWTRL 9, nFAW 26, nRFC 433, nREFI 9364; read latency nCL + nBL = 20.
HBM2-2000: nCL 14, nRCDRD 14, nRCDWR 12, nRP 14, nRAS 34, nBL 2, read latency 16; ACT takes
two row-bus cycles, so ACT->RD is nRCDRD + 1 = 15 and a row command waits 2 cycles after ACT.

Arrival convention (Ramulator's trace frontend): a request offered at cycle c can have its
first command issue at c + 1.
"""

from __future__ import annotations

import pytest

from spatten_dv.models.dram import MemorySystem, SystemConfig
from spatten_dv.models.dram.device import INF, Device


# DDR4 RoBaRaCoCh (1 rank, 64 B transactions): column [12:6], bank group [14:13],
# bank [16:15], row [32:17].
def ddr4(bg=0, bank=0, row=0, col=0) -> int:
    return (row << 17) | (bank << 15) | (bg << 13) | (col << 6)


# HBM2 RoBaRaCoCh (32 B transactions): column [9:5], pseudo-channel [10], bank group [12:11],
# bank [14:13], row [30:15].
def hbm2(pc=0, bg=0, bank=0, row=0, col=0) -> int:
    return (row << 15) | (bank << 13) | (bg << 11) | (pc << 10) | (col << 5)


def run_schedule(requests, standard="DDR4", refresh="NoRefresh", row_policy="Open",
                 scheduler="FRFCFS", **kwargs):
    """Offer (cycle, 'LD'|'ST', addr) requests in order (a rejected one is retried), run to
    completion; returns ([(cycle, command)], [depart per request], memory)."""
    preset = {"DDR4": "DDR4_2400R", "HBM2": "HBM2_2000Mbps"}[standard]
    config = SystemConfig.from_presets(standard, preset, refresh=refresh, row_policy=row_policy,
                                       scheduler=scheduler, **kwargs)
    memory = MemorySystem(config, log_commands=True)
    pending = list(requests)
    accepted = []
    while True:
        memory.pop_completions()
        if not (pending or memory.busy):
            break
        wait_until = INF
        if pending:
            cycle, op, addr = pending[0]
            if cycle <= memory.now:
                req = memory.try_send(addr, is_write=(op == "ST"), tag=len(accepted))
                if req is not None:
                    accepted.append(req)
                    pending.pop(0)
                    memory.advance_to(memory.now + 1)  # at most one request per cycle
                    continue
            else:
                wait_until = cycle
        memory.advance_to(min(memory.next_event_cycle(), wait_until))
    log = [(clk, name) for clk, name, _, _ in memory.controllers[0].command_log]
    return log, [r.depart for r in accepted], memory


# ---- device level: ready cycles after single commands --------------------------------------

@pytest.fixture
def ddr4_device():
    return Device(SystemConfig.from_presets("DDR4", "DDR4_2400R").dram)


def test_ddr4_activate_constraints(ddr4_device):
    d = ddr4_device
    bank = d.flat_bank((0, 0, 0, 0))
    d.issue(d.ACT, (0, 0, 0, 0), bank, 5, 100)
    assert d.bank_ready_at(d.RD, bank) == 116  # nRCD
    assert d.bank_ready_at(d.WR, bank) == 116
    assert d.bank_ready_at(d.PRE, bank) == 139  # nRAS
    assert d.bank_ready_at(d.ACT, d.flat_bank((0, 0, 1, 0))) == 104  # other BG: nRRDS
    assert d.bank_ready_at(d.ACT, d.flat_bank((0, 0, 0, 1))) == 106  # same BG: nRRDL
    assert d.ready_at(d.PREA, (0, 0, -1, -1)) == 139  # ACT -> PREab: nRAS
    assert d.ready_at(d.REFA, (0, 0, -1, -1)) == 155  # ACT -> REFab: nRC
    assert d.open_row[bank] == 5


def test_ddr4_four_activate_window(ddr4_device):
    d = ddr4_device
    for i, bg in enumerate(range(4)):  # ACTs at 0, 4, 8, 12 to four bank groups
        d.issue(d.ACT, (0, 0, bg, 0), d.flat_bank((0, 0, bg, 0)), 0, 4 * i)
    # The fifth ACT waits for the first + nFAW = 26, beyond nRRDS (12 + 4 = 16).
    assert d.bank_ready_at(d.ACT, d.flat_bank((0, 0, 0, 1))) == 26


def test_ddr4_read_write_turnarounds(ddr4_device):
    d = ddr4_device
    b00, b10 = d.flat_bank((0, 0, 0, 0)), d.flat_bank((0, 0, 1, 0))
    d.issue(d.WR, (0, 0, 0, 0), b00, 0, 50)
    assert d.bank_ready_at(d.RD, b00) == 50 + 12 + 4 + 9  # same BG: nCWL + nBL + nWTRL
    assert d.bank_ready_at(d.RD, b10) == 50 + 12 + 4 + 3  # other BG: nCWL + nBL + nWTRS
    assert d.bank_ready_at(d.PRE, b00) == 50 + 12 + 4 + 18  # nCWL + nBL + nWR
    d.issue(d.RD, (0, 0, 1, 0), b10, 0, 200)
    assert d.bank_ready_at(d.WR, b00) == 200 + 16 + 4 + 2 - 12  # nCL + nBL + 2 - nCWL
    assert d.bank_ready_at(d.RD, b00) == 204  # nCCDS (and nBL on the channel)
    assert d.bank_ready_at(d.RD, b10) == 206  # nCCDL


def test_hbm2_two_cycle_activate():
    d = Device(SystemConfig.from_presets("HBM2", "HBM2_2000Mbps").dram)
    bank = d.flat_bank((0, 0, 0, 0))
    d.issue(d.ACT, (0, 0, 0, 0), bank, 0, 10)
    assert d.bank_ready_at(d.RD, bank) == 10 + 15  # nRCDRD + 1: ACT is recorded at cycle 1 of 2
    assert d.bank_ready_at(d.WR, bank) == 10 + 13  # nRCDWR + 1
    assert d.bank_ready_at(d.PRE, bank) == 10 + 35  # nRAS + 1
    other_pc = d.flat_bank((0, 1, 0, 0))
    assert d.bank_ready_at(d.ACT, other_pc) == 12  # the row bus is busy for 2 cycles
    assert d.bank_ready_at(d.RD, other_pc) == -1  # the column bus is separate
    assert d.bank_ready_at(d.ACT, d.flat_bank((0, 0, 1, 0))) == 14  # nRRDS (2-cycle both ends)


# ---- controller level: command schedules ----------------------------------------------------

def test_single_read_to_closed_bank():
    log, departs, memory = run_schedule([(0, "LD", ddr4())])
    assert log == [(1, "ACT"), (17, "RD")]
    assert departs == [17 + 20]
    stats = memory.stats()
    assert (stats.row_hits, stats.row_misses, stats.row_conflicts) == (0, 1, 0)


def test_row_hit_waits_for_ccd_long():
    log, departs, memory = run_schedule([(0, "LD", ddr4(col=0)), (1, "LD", ddr4(col=1))])
    # The second read finds the row open (a hit, counted at its RD) and follows nCCDL = 6.
    assert log == [(1, "ACT"), (17, "RD"), (23, "RD")]
    assert departs == [37, 43]
    stats = memory.stats()
    assert (stats.row_hits, stats.row_misses, stats.row_conflicts) == (1, 1, 0)


def test_row_conflict_waits_for_ras_then_precharge():
    log, departs, memory = run_schedule([(0, "LD", ddr4(row=0)), (1, "LD", ddr4(row=1))])
    # PRE must wait for the first RD (the active request) and nRAS after ACT (1 + 39 = 40);
    # the next ACT for nRP (40 + 16) and nRC (1 + 55); then nRCD.
    assert log == [(1, "ACT"), (17, "RD"), (40, "PREpb"), (56, "ACT"), (72, "RD")]
    assert departs == [37, 92]
    stats = memory.stats()
    assert (stats.row_hits, stats.row_misses, stats.row_conflicts) == (0, 1, 1)


def test_activates_across_bank_groups_and_within_one():
    across = [(i, "LD", ddr4(bg=i)) for i in range(4)]
    log, departs, _ = run_schedule(across)
    assert log == [(1, "ACT"), (5, "ACT"), (9, "ACT"), (13, "ACT"),
                   (17, "RD"), (21, "RD"), (25, "RD"), (29, "RD")]
    assert departs == [37, 41, 45, 49]
    within = [(i, "LD", ddr4(bank=i)) for i in range(4)]
    log, departs, _ = run_schedule(within)
    assert log == [(1, "ACT"), (7, "ACT"), (13, "ACT"), (17, "RD"), (19, "ACT"),  # nRRDL = 6
                   (23, "RD"), (29, "RD"), (35, "RD")]
    assert departs == [37, 43, 49, 55]


def test_fifth_activate_waits_for_faw():
    requests = [(i, "LD", ddr4(bg=i)) for i in range(4)] + [(4, "LD", ddr4(bank=1))]
    log, departs, _ = run_schedule(requests)
    acts = [clk for clk, name in log if name == "ACT"]
    assert acts == [1, 5, 9, 13, 27]  # 1 + nFAW
    assert departs[-1] == 27 + 16 + 20


def test_write_then_read_same_row():
    log, departs, memory = run_schedule([(0, "ST", ddr4(col=0)), (1, "LD", ddr4(col=1))])
    # Write mode (no reads queued at cycle 1): ACT for the write; the read is a row hit but
    # the active write goes first (17), then WR -> RD in the same bank group: 12 + 4 + 9.
    assert log == [(1, "ACT"), (17, "WR"), (42, "RD")]
    assert departs == [17, 62]  # a write completes when its WR issues
    stats = memory.stats()
    assert (stats.reads, stats.writes) == (1, 1)
    assert (stats.row_hits, stats.row_misses, stats.row_conflicts) == (1, 1, 0)


def test_fr_fcfs_lets_a_ready_hit_pass_an_older_conflict():
    requests = [(0, "LD", ddr4(row=0)), (1, "LD", ddr4(row=1)), (2, "LD", ddr4(row=0, col=1))]
    log, departs, _ = run_schedule(requests)
    assert log == [(1, "ACT"), (17, "RD"), (23, "RD"), (40, "PREpb"), (56, "ACT"), (72, "RD")]
    assert departs == [37, 92, 43]
    log, departs, _ = run_schedule(requests, scheduler="FCFS")
    # Strict order: the conflict holds the queue; the third request re-opens row 0 after it.
    assert log == [(1, "ACT"), (17, "RD"), (40, "PREpb"), (56, "ACT"), (72, "RD"),
                   (95, "PREpb"), (111, "ACT"), (127, "RD")]
    assert departs == [37, 92, 147]


def test_all_bank_refresh_closes_rows_and_blocks_for_rfc():
    requests = [(0, "LD", ddr4()), (9365, "LD", ddr4(col=1))]
    log, departs, memory = run_schedule(requests, refresh="AllBank")
    # At nREFI = 9364 REFab is queued; the open bank needs PREab first, REFab nRP later; the
    # next request waits behind the priority buffer, then for nRFC after REFab.
    assert log == [(1, "ACT"), (17, "RD"), (9364, "PREab"), (9380, "REFab"),
                   (9380 + 433, "ACT"), (9380 + 433 + 16, "RD")]
    assert departs == [37, 9380 + 433 + 16 + 20]
    stats = memory.stats()
    assert (stats.row_hits, stats.row_misses, stats.row_conflicts) == (0, 2, 0)  # miss: closed


def test_closed_cap_auto_precharge():
    requests = [(i, "LD", ddr4(col=i)) for i in range(6)]
    log, departs, memory = run_schedule(requests, row_policy="ClosedCAP")
    # Four RDs reach the cap; the fifth access to the row becomes RDA (legal at 41, before the
    # fallback PREpb would be: RD at 35 + nRTP = 44). The sixth request re-opens the row after
    # RDA -> ACT (nRTP + nRP = 25).
    assert log == [(1, "ACT"), (17, "RD"), (23, "RD"), (29, "RD"), (35, "RD"), (41, "RDA"),
                   (66, "ACT"), (82, "RD")]
    assert departs == [37, 43, 49, 55, 61, 102]
    stats = memory.stats()
    assert (stats.row_hits, stats.row_misses, stats.row_conflicts) == (4, 2, 0)


def test_closed_cap_falls_back_to_precharge():
    requests = [(i, "LD", ddr4(col=i)) for i in range(4)] + [(100, "LD", ddr4(col=9))]
    log, departs, memory = run_schedule(requests, row_policy="ClosedCAP")
    # No fifth access comes in time, so a PREpb is queued and issued as soon as it is legal
    # (last RD at 35 + nRTP = 44); the late request then misses.
    assert log == [(1, "ACT"), (17, "RD"), (23, "RD"), (29, "RD"), (35, "RD"), (44, "PREpb"),
                   (101, "ACT"), (117, "RD")]
    assert departs == [37, 43, 49, 55, 137]
    stats = memory.stats()
    assert (stats.row_hits, stats.row_misses, stats.row_conflicts) == (3, 2, 0)


def test_hbm2_row_and_column_slots_in_one_cycle():
    requests = [(0, "LD", hbm2(bg=0)), (1, "LD", hbm2(bg=1)), (15, "LD", hbm2(bg=2))]
    log, departs, _ = run_schedule(requests, standard="HBM2")
    # ACTs: 1, then nRRDS = 4 later; RDs at ACT + 15. At 16 the column slot issues the first RD
    # and the row slot the third request's ACT, in the same cycle.
    assert log == [(1, "ACT"), (5, "ACT"), (16, "RD"), (16, "ACT"), (20, "RD"), (31, "RD")]
    assert departs == [32, 36, 47]


def test_hbm2_pseudo_channels_share_the_row_bus_only():
    requests = [(0, "LD", hbm2(pc=0)), (1, "LD", hbm2(pc=1))]
    log, departs, _ = run_schedule(requests, standard="HBM2")
    assert log == [(1, "ACT"), (3, "ACT"), (16, "RD"), (18, "RD")]
    assert departs == [32, 34]


def test_ddr4_rank_switch_uses_sibling_rules():
    """With two ranks, a RD on rank 0 delays column commands on rank 1 by nBL + nCS = 6
    (a sibling rule) while rank 0 itself only waits nCCDS = 4."""
    from dataclasses import replace

    dram = SystemConfig.from_presets("DDR4", "DDR4_2400R").dram
    d = Device(replace(dram, level_sizes=(1, 2, 4, 4, 1 << 16, 1 << 10)))
    rank0, rank1 = d.flat_bank((0, 0, 1, 0)), d.flat_bank((0, 1, 2, 0))
    d.issue(d.RD, (0, 0, 1, 0), rank0, 0, 100)
    assert d.bank_ready_at(d.RD, d.flat_bank((0, 0, 2, 0))) == 104  # same rank: nCCDS
    assert d.bank_ready_at(d.RD, rank1) == 106  # other rank: nBL + nCS
    assert d.bank_ready_at(d.WR, rank1) == 106
    d.issue(d.WR, (0, 1, 2, 0), rank1, 0, 200)
    assert d.bank_ready_at(d.RD, rank0) == 200 + 12 + 4 + 2 - 16  # nCWL + nBL + nCS - nCL
    assert d.ready_at(d.REFA, (0, 1, -1, -1)) == -1  # refresh of rank 1 ignores rank 0 RDs
