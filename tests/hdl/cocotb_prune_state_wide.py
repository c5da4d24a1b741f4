"""cocotb test of spatten_prune_state at LANES > 1 (wide scan beats, token accumulation groups)
against SpAttenCoreModel's pruning state (section 7), like tests/hdl/cocotb_prune_state.py
(whose model helpers and driver this module reuses; that module stays the LANES = 1 test).

Besides the model comparison, the cycle rules of the header are checked exactly: a wide scan
beat is the run of the chunk's next selected entries that stops before the first entry whose
bank (index mod LANES) the beat already reads, at the end of the 32-entry chunk, or at LANES
entries (`expected_beats`), and the scan ends beats + 4 cycles after its take edge; a token
group takes as many cycles as its most used bank has lanes (`group_cycles`).

Environment: PRUNE_L_MAX / PRUNE_H_MAX / PRUNE_LANES (must match the build, set by the pytest
wrapper), PRUNE_STATE_STEPS (random operations, default 60), PRUNE_WIDE_SATURATION (0 skips
the 65538-cycle saturation test).
"""

import os
from collections import Counter

import cocotb
import torch
from cocotb.triggers import ReadOnly, RisingEdge, Timer
from cocotb_prune_state import (
    H_MAX,
    L_MAX,
    PERIOD,
    STEPS,
    Driver,
    check_ports,
    model_acc_head,
    model_acc_tokens_seq,
    model_scan,
    random_probs,
    start,
    wait_op_ready,
)

from spatten_dv.models.core import IMP_MAX
from spatten_dv.models.topk import topk_indices

LANES = int(os.environ.get("PRUNE_LANES", "8"))
# 2^16 + 2 cycles: seconds on Verilator, half a minute on Icarus at L_MAX = 1024
SATURATION = os.environ.get("PRUNE_WIDE_SATURATION", "1") == "1"
LB = (L_MAX - 1).bit_length()
CHUNK = 32


def pack(values, width):
    return sum(int(v) << (i * width) for i, v in enumerate(values))


def unpack(word, width, count):
    mask = (1 << width) - 1
    return [(word >> (i * width)) & mask for i in range(count)]


def expected_beats(indices, wide, idx_only=False):
    """The header's beat rule over the ascending selected indices: the indices of each beat.
    A beat takes the next entries of the window (the rest of the current 32-entry chunk plus
    the next non-empty chunk) while it has fewer than LANES (1 when not wide) and, unless
    idx_only, the entry's bank (index mod LANES) is not read yet."""
    limit = LANES if wide else 1
    run_end = [0] * len(indices)  # first position after the chunk run holding position i
    for i in range(len(indices) - 1, -1, -1):
        same = i + 1 < len(indices) and indices[i + 1] // CHUNK == indices[i] // CHUNK
        run_end[i] = run_end[i + 1] if same else i + 1
    beats, pos = [], 0
    while pos < len(indices):
        first_end = run_end[pos]
        window_end = run_end[first_end] if first_end < len(indices) else first_end
        beat, used = [], set()
        for t in indices[pos:window_end]:
            if len(beat) == limit or (not idx_only and t % LANES in used):
                break
            beat.append(t)
            used.add(t % LANES)
        beats.append(beat)
        pos += len(beat)
    return beats


def group_cycles(group):
    """Cycles a token group occupies the accumulation input: its most used bank's lanes."""
    return max(Counter(t % LANES for t, _ in group).values())


class WideDriver(Driver):
    async def reset(self):
        self.dut.scan_wide.value = 0
        self.dut.scan_idx_only.value = 0
        self.dut.tacc_count.value = 1  # the narrow driver's entries are one-lane groups
        await super().reset()

    async def wide_scan(self, heads, all_, n, ready_prob=1.0, idx_only=False):
        """One scan with scan_wide = 1: (entries, beats) as lists of (index, importance)."""
        dut = self.dut
        await self.command(scan_start=1, scan_heads=int(heads), scan_all=int(all_),
                           scan_n=n, scan_wide=1, scan_idx_only=int(idx_only))
        dut.scan_wide.value = 0
        dut.scan_idx_only.value = 0
        what = f"wide scan heads={heads} all={all_} n={n} idx_only={idx_only}"
        beats, lasts = [], []
        cycle = 0
        for _ in range(int((n + 20) * 4 / ready_prob) + 100):
            cycle += 1
            ready = self.rng.random() < ready_prob
            dut.scan_ready.value = int(ready)
            await ReadOnly()
            if int(dut.scan_valid.value) and ready:
                count = int(dut.scan_count_beat.value)
                idx = unpack(int(dut.scan_idx.value), LB, LANES)
                imp = unpack(int(dut.scan_imp.value), 32, LANES)
                assert 1 <= count <= LANES, f"{what}: beat of {count} entries"
                assert idx[count:] == [0] * (LANES - count) and imp[count:] == \
                    [0] * (LANES - count), f"{what}: lanes past scan_count_beat not zero"
                beats.append(list(zip(idx[:count], imp[:count], strict=True)))
                lasts.append(int(dut.scan_last.value))
            done = int(dut.scan_done.value)
            if done:
                total = int(dut.scan_count.value)
                assert int(dut.op_ready.value), f"{what}: op_ready low in the scan_done cycle"
            await RisingEdge(dut.clk)
            if done:
                break
        else:
            raise AssertionError(f"{what} never finished")
        dut.scan_ready.value = 0
        self.last_scan_cycles = cycle
        got = [e for beat in beats for e in beat]
        assert total == len(got), f"{what}: scan_count {total}, {len(got)} entries emitted"
        assert lasts == [0] * (len(beats) - 1) + [1] * bool(beats), f"{what}: scan_last misplaced"
        if idx_only:
            assert all(v == 0 for _, v in got), f"{what}: importance lanes not 0"
        want_beats = expected_beats([t for t, _ in got], True, idx_only)
        assert [[t for t, _ in b] for b in beats] == want_beats, \
            f"{what}: beats {[len(b) for b in beats][:20]} not the header's rule " \
            f"{[len(b) for b in want_beats][:20]}"
        if ready_prob >= 1.0:
            want_cycles = len(beats) + 4 if beats else 2
            assert cycle == want_cycles, f"{what}: done after {cycle} cycles, not {want_cycles}"
        return got, beats

    async def accumulate_groups(self, groups, heads=(), valid_prob=1.0):
        """Stream token groups [(index, prob), ...] (and head entries); returns the cycle of
        each group's take edge (counted from the call)."""
        dut = self.dut
        gi = hi = 0
        taken_at = []
        # slack: a rescale taken just before runs L_MAX / LANES + 2 cycles with ready = 0
        entries = sum(len(g) for g in groups) + len(heads)
        for cycle in range(entries * 20 + L_MAX + 100):
            if gi >= len(groups) and hi >= len(heads):
                break
            tv = gi < len(groups) and self.rng.random() < valid_prob
            hv = hi < len(heads) and self.rng.random() < valid_prob
            dut.tacc_valid.value = int(tv)
            if gi < len(groups):
                g = groups[gi]
                dut.tacc_count.value = len(g)
                dut.tacc_idx.value = pack([t for t, _ in g], LB)
                dut.tacc_prob.value = pack([p for _, p in g], 16)
            dut.hacc_valid.value = int(hv)
            if hi < len(heads):
                dut.hacc_idx.value, dut.hacc_val.value = heads[hi]
            await ReadOnly()
            t_taken = tv and int(dut.tacc_ready.value)
            h_taken = hv and int(dut.hacc_ready.value)
            await RisingEdge(dut.clk)
            if t_taken:
                taken_at.append(cycle)
            gi += int(t_taken)
            hi += int(h_taken)
        else:
            raise AssertionError("accumulation streams stalled")
        dut.tacc_valid.value = 0
        dut.hacc_valid.value = 0
        dut.tacc_count.value = 1
        return taken_at


def model_acc_groups(model, groups):
    for g in groups:
        model_acc_tokens_seq(model, [t for t, _ in g], [p for _, p in g])


async def check_wide_scan(drv, model, heads, all_, n, ready_prob=1.0, idx_only=False):
    got, beats = await drv.wide_scan(heads, all_, n, ready_prob, idx_only)
    want = model_scan(model, heads, all_, n)
    if idx_only:
        want = [(t, 0) for t, _ in want]
    if got != want:
        diff = [(g, w) for g, w in zip(got, want, strict=False) if g != w][:5]
        raise AssertionError(f"wide scan heads={heads} all={all_} n={n}: {len(got)} entries vs "
                             f"model {len(want)}; first differences (dut, model): {diff}")
    return got, beats


async def check_narrow_scan(drv, model, heads, all_, n, ready_prob=1.0):
    """scan_wide = 0 at LANES > 1: one entry per beat, the LANES = 1 timing (K + 4)."""
    got = await drv.scan(heads, all_, n, ready_prob)
    assert got == model_scan(model, heads, all_, n), f"narrow scan heads={heads} n={n}"
    return got


async def check_full(drv, model, rng, ready_prob=1.0):
    for heads, lim in ((False, L_MAX), (True, H_MAX)):
        await check_wide_scan(drv, model, heads, True, lim, ready_prob)
        await check_wide_scan(drv, model, heads, False, lim, ready_prob)
    await check_ports(drv, model, rng)


async def prune_flow(drv, model, rng, heads, n, keep, ready_prob=1.0, wide=True):
    """The core's prune with the candidates from a wide (or narrow) scan."""
    if wide:
        cands, _ = await check_wide_scan(drv, model, heads, False, n, ready_prob)
    else:
        cands = await check_narrow_scan(drv, model, heads, False, n, ready_prob)
    finish = rng.choice(["last", "end", "end_same"])
    if keep and keep < len(cands):
        values = torch.tensor([v for _, v in cands], dtype=torch.int64)
        winners = [cands[i][0] for i in topk_indices(values, keep).tolist()]
        await drv.prune(heads, n, winners, finish, valid_prob=rng.choice([1.0, 0.6]))
    if keep:
        (model.prune_heads if heads else model.prune_tokens)(n, keep)


def chunk_groups(entries, rng, full=False):
    """Consecutive entries cut into groups of 1..LANES (all LANES when full)."""
    groups, i = [], 0
    while i < len(entries):
        size = LANES if full or rng.random() < 0.6 else rng.randint(1, LANES)
        groups.append(entries[i:i + size])
        i += size
    return groups


def random_groups(rng, count, kind=None):
    """Token groups of distinct ascending indices with bank conflicts of every depth; 'dup'
    groups also repeat an index and are unsorted (legal: applied as if in lane order)."""
    groups = []
    for _ in range(count):
        k = kind or rng.choice(["random", "same_bank", "window", "dup"])
        size = rng.randint(1, LANES)
        if k == "same_bank":
            base = rng.randrange(LANES)
            rows = sorted(rng.sample(range(L_MAX // LANES), size))
            idx = [r * LANES + base for r in rows]
        elif k == "window":
            start_ = rng.randrange(L_MAX - 2 * LANES)
            idx = sorted(rng.sample(range(start_, start_ + 2 * LANES), size))
        elif k == "dup":
            idx = [rng.choice([3, 3 + LANES, 4, L_MAX - 1]) for _ in range(size)]
        else:
            idx = sorted(rng.sample(range(L_MAX), size))
        groups.append(list(zip(idx, random_probs(rng, size), strict=True)))
    return groups


async def wide_start(dut):
    drv, rng, model = await start(dut)
    wide = WideDriver(dut, rng)
    await wide.reset()
    return wide, rng, model


# ---------------------------------------------------------------------------- tests
@cocotb.test()
async def wide_rules(dut):
    """Rates and cycle rules: full-rate accumulation and scans, conflicts, narrow mode."""
    drv, rng, model = await wide_start(dut)
    # all kept: every beat full, L_MAX / LANES beats
    got, beats = await check_wide_scan(drv, model, False, False, L_MAX)
    assert len(beats) == L_MAX // LANES
    dut._log.info("wide scan, %d of %d kept: %d beats, %d cycles (take edge to scan_done), "
                  "%.2f entries/cycle", len(got), L_MAX, len(beats), drv.last_scan_cycles,
                  len(got) / drv.last_scan_cycles)
    # consecutive indices in full groups: one group per cycle
    probs = random_probs(rng, L_MAX)
    groups = chunk_groups(list(zip(range(L_MAX), probs, strict=True)), rng, full=True)
    taken = await drv.accumulate_groups(groups)
    model_acc_groups(model, groups)
    span = taken[-1] - taken[0] + 1
    dut._log.info("token accumulation, consecutive indices: %d entries in %d cycles, "
                  "%.2f entries/cycle", L_MAX, span, L_MAX / span)
    assert span == len(groups), f"consecutive groups took {span} cycles, not {len(groups)}"
    await check_wide_scan(drv, model, False, True, L_MAX)
    # groups with bank conflicts, valid held: each takes its most used bank's lane count
    for kind in ("same_bank", "random", "window", "dup"):
        groups = random_groups(rng, 40, kind)
        taken = await drv.accumulate_groups(groups)
        model_acc_groups(model, groups)
        gaps = [b - a for a, b in zip(taken, taken[1:], strict=False)]
        want = [group_cycles(g) for g in groups[:-1]]
        assert gaps == want, f"{kind} groups: cycles between takes {gaps[:12]}, want {want[:12]}"
        entries = sum(len(g) for g in groups[:-1])
        dut._log.info("token accumulation, %s groups: %.2f entries/cycle", kind,
                      entries / max(1, sum(gaps)))
        await check_wide_scan(drv, model, False, True, L_MAX)
    # the same group back to back (forwarding of each bank's last write)
    g = [(t, 40000) for t in range(5, 5 + LANES)]
    await drv.accumulate_groups([g] * 6)
    model_acc_groups(model, [g] * 6)
    await check_full(drv, model, rng)
    # kept patterns of several densities: beats follow the rule, print the rate
    for density in (0.5, 0.25, 0.1):
        await drv.command(reselect=1, reselect_n=L_MAX)
        model.reselect_tokens(L_MAX)
        keep = max(1, int(L_MAX * density))
        await prune_flow(drv, model, rng, False, L_MAX, keep)
        for idx_only in (False, True):
            got, beats = await check_wide_scan(drv, model, False, False, L_MAX,
                                               idx_only=idx_only)
            dut._log.info("wide scan%s, %d of %d kept (top-%d pattern): %d beats, %d cycles, "
                          "%.2f entries/cycle", " (index only)" if idx_only else "", len(got),
                          L_MAX, keep, len(beats), drv.last_scan_cycles,
                          len(got) / drv.last_scan_cycles)
        await check_narrow_scan(drv, model, False, False, L_MAX)  # the LANES = 1 timing
    # narrow mode: one-entry groups (tacc_count = 1) with the narrow driver, narrow scans
    seq = [rng.randrange(L_MAX) for _ in range(100)]
    probs = random_probs(rng, len(seq))
    await drv.accumulate(tokens=list(zip(seq, probs, strict=True)), valid_prob=0.7)
    model_acc_tokens_seq(model, seq, probs)
    for heads, lim in ((False, L_MAX), (True, H_MAX)):
        for all_ in (False, True):
            await check_narrow_scan(drv, model, heads, all_, lim)
            await check_wide_scan(drv, model, heads, all_, lim, ready_prob=0.4)
    # empty scans, n = 1
    for heads in (False, True):
        assert (await drv.wide_scan(heads, True, 0))[0] == []
    await check_wide_scan(drv, model, False, True, 1)
    # rescale: every bank in parallel, L_MAX / LANES + 2 cycles
    await drv.command(rescale=1, rescale_shift=3)
    model.rescale_tokens(3)
    cycle = await wait_op_ready(dut)
    assert cycle == L_MAX // LANES + 2, f"rescale took {cycle} cycles, not L_MAX/LANES + 2"
    await check_full(drv, model, rng)


@cocotb.test(skip=not SATURATION)
async def wide_saturation(dut):
    """A full group of consecutive tokens held valid for 2^16 + 2 cycles: every lane saturates
    at 2^32 - 1 (one group per cycle, no Python on the edges)."""
    drv, rng, model = await wide_start(dut)
    base = LANES * 3
    cycles = 65538
    dut.tacc_count.value = LANES
    dut.tacc_idx.value = pack(range(base, base + LANES), LB)
    dut.tacc_prob.value = pack([65535] * (LANES - 1) + [1], 16)
    assert int(dut.tacc_ready.value)
    dut.tacc_valid.value = 1
    await Timer(cycles * PERIOD + PERIOD // 2, unit="ns")
    dut.tacc_valid.value = 0
    await RisingEdge(dut.clk)
    for t in range(base, base + LANES - 1):
        model.token_importance[t] = min(65535 * cycles, IMP_MAX)
    model.token_importance[base + LANES - 1] = cycles
    await check_wide_scan(drv, model, False, True, L_MAX)
    g = [(t, 1) for t in range(base, base + LANES)]
    await drv.accumulate_groups([g])
    model_acc_groups(model, [g])
    await check_full(drv, model, rng)
    assert int(model.token_importance[base]) == IMP_MAX


@cocotb.test()
async def wide_random_operations(dut):
    drv, rng, model = await wide_start(dut)
    ops = ["clear", "acc", "acc_random", "prune_t", "prune_h", "scan", "reselect", "rescale"]
    stats = dict.fromkeys(ops, 0)
    for step in range(STEPS):
        op = rng.choices(ops, [1, 3, 2, 2, 1, 3, 1, 1])[0]
        stats[op] += 1
        dut._log.debug("step %d: %s", step, op)
        if op == "clear":
            ct, ch = rng.choice([(1, 0), (0, 1), (1, 1)])
            await drv.command(clear_tokens=ct, clear_heads=ch)
            if ct:
                model.clear_tokens()
            if ch:
                model.clear_heads()
        elif op in ("acc", "acc_random"):
            if op == "acc":  # one job: its kept tokens below n, ascending, in groups
                n = rng.choice([rng.randrange(L_MAX + 1), L_MAX])
                keys = torch.nonzero(model.token_kept[:n]).flatten().tolist()
                groups = chunk_groups(list(zip(keys, random_probs(rng, len(keys)),
                                               strict=True)), rng)
            else:
                groups = random_groups(rng, rng.randint(1, 30))
            h = rng.randrange(H_MAX)
            hv = rng.choice([rng.randrange(1 << 22), (1 << 22) - 1, 0])
            await drv.accumulate_groups(groups, heads=[(h, hv)],
                                        valid_prob=rng.choice([1.0, 0.5]))
            model_acc_groups(model, groups)
            model_acc_head(model, h, hv)
        elif op in ("prune_t", "prune_h"):
            heads = op == "prune_h"
            lim = H_MAX if heads else L_MAX
            n = rng.choice([0, lim, rng.randrange(lim + 1)])
            count = int(model.head_kept[:n].sum() if heads else model.token_kept[:n].sum())
            keep = rng.choice([0, 1, count, count + 1, rng.randrange(count + 2),
                               max(1, count // 10), count // 2, max(1, count - 1)])
            await prune_flow(drv, model, rng, heads, n, keep,
                             ready_prob=rng.choice([1.0, 0.5]), wide=rng.random() < 0.8)
        elif op == "reselect":
            n = rng.choice([0, L_MAX, rng.randrange(L_MAX + 1)])
            await drv.command(reselect=1, reselect_n=n)
            model.reselect_tokens(n)
        elif op == "rescale":
            shift = rng.choice([0, 1, 2, rng.randrange(32), 31])
            await drv.command(rescale=1, rescale_shift=shift)
            model.rescale_tokens(shift)
        else:
            heads = rng.random() < 0.3
            lim = H_MAX if heads else L_MAX
            n = rng.choice([0, lim, rng.randrange(lim + 1)])
            all_ = rng.random() < 0.5
            ready = rng.choice([1.0, 0.7, 0.2])
            if rng.random() < 0.8:
                await check_wide_scan(drv, model, heads, all_, n, ready_prob=ready,
                                      idx_only=rng.random() < 0.3)
            else:
                await check_narrow_scan(drv, model, heads, all_, n, ready_prob=ready)
        await check_ports(drv, model, rng, samples=1)
        if step % 8 == 7:
            await check_full(drv, model, rng, ready_prob=rng.choice([1.0, 0.5]))
    await check_full(drv, model, rng)
    dut._log.info("operations: %s; tokens kept at the end %d, heads kept %d", stats,
                  int(model.token_kept.sum()), int(model.head_kept.sum()))
