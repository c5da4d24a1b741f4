"""cocotb test of spatten_prune_state against SpAttenCoreModel's pruning state (section 7).

The test plays the core's job controller: it clears, accumulates token and head importance,
scans, and prunes, where the winners come from the model's `topk_indices` over the values the
DUT's scan returned (standing in for the top-k engine). After each operation the DUT's scans and
read ports are compared with a `SpAttenCoreModel` updated by the model's own methods
(clear_tokens, clear_heads, rescale_tokens, reselect_tokens, prune_tokens, prune_heads;
accumulation with run_job's step-10 formula).

Environment: PRUNE_STATE_STEPS (random operations in the random test, default 60),
PRUNE_L_MAX / PRUNE_H_MAX (must match the build, set by the pytest wrapper).
"""

import os
import random

import cocotb
import torch
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, Timer

from spatten_dv.models.core import IMP_MAX, SpAttenCoreModel
from spatten_dv.models.params import CoreParams
from spatten_dv.models.topk import topk_indices

L_MAX = int(os.environ.get("PRUNE_L_MAX", "1024"))
H_MAX = int(os.environ.get("PRUNE_H_MAX", "32"))
STEPS = int(os.environ.get("PRUNE_STATE_STEPS", "60"))
PERIOD = 10
TIMEOUT = 4 * L_MAX + 200  # cycles any single operation may take (with back-pressure)

INPUTS = ("clear_tokens", "clear_heads", "reselect", "reselect_n", "rescale", "rescale_shift",
          "scan_start", "scan_heads", "scan_all", "scan_n",
          "prune_begin", "prune_heads", "prune_n", "tacc_valid", "tacc_idx", "tacc_prob",
          "hacc_valid", "hacc_idx", "hacc_val", "scan_ready", "win_valid", "win_idx",
          "win_last", "prune_end", "rd_head_id", "rd_token_idx")


# ---------------------------------------------------------------------------- model helpers
def new_model():
    return SpAttenCoreModel(CoreParams(max_tokens=L_MAX, max_heads=H_MAX))


def model_acc_tokens(model, keys, probs):
    """run_job step 8 (acc_tokens) for a list of distinct token indices."""
    keys = torch.tensor(keys, dtype=torch.int64)
    acc = model.token_importance[keys] + torch.tensor(probs, dtype=torch.int64)
    model.token_importance[keys] = acc.clamp(max=IMP_MAX)


def model_acc_tokens_seq(model, keys, probs):
    """Step 8 applied one entry at a time (repeated indices allowed)."""
    for t, p in zip(keys, probs, strict=True):
        model_acc_tokens(model, [t], [p])


def model_acc_head(model, head, value):
    """run_job step 8 (acc_heads)."""
    acc = int(model.head_importance[head]) + value
    model.head_importance[head] = min(acc, IMP_MAX)


def model_scan(model, heads, all_, n):
    kept = model.head_kept if heads else model.token_kept
    imp = model.head_importance if heads else model.token_importance
    n = min(n, kept.numel())
    idx = torch.arange(n) if all_ else torch.nonzero(kept[:n]).flatten()
    return list(zip(idx.tolist(), imp[idx].tolist(), strict=True))


# ---------------------------------------------------------------------------- DUT driver
class Driver:
    def __init__(self, dut, rng):
        self.dut = dut
        self.rng = rng
        self.last_scan_cycles = None

    async def reset(self):
        dut = self.dut
        for name in INPUTS:
            getattr(dut, name).value = 0
        dut.rst_n.value = 0
        await ClockCycles(dut.clk, 3)
        dut.rst_n.value = 1
        await RisingEdge(dut.clk)

    async def command(self, **sigs):
        """Hold a request (and its arguments) until op_ready takes it; returns after the edge."""
        dut = self.dut
        for name, val in sigs.items():
            getattr(dut, name).value = int(val)
        for _ in range(TIMEOUT):
            await ReadOnly()
            taken = int(dut.op_ready.value)
            await RisingEdge(dut.clk)
            if taken:
                break
        else:
            raise AssertionError(f"command {sigs} never taken")
        for name in ("clear_tokens", "clear_heads", "reselect", "rescale", "scan_start",
                     "prune_begin"):
            if name in sigs:
                getattr(dut, name).value = 0

    async def accumulate(self, tokens=(), heads=(), valid_prob=1.0):
        """Stream (token, prob) and (head, value) entries, both streams at once."""
        dut = self.dut
        ti = hi = 0
        # slack: a rescale taken just before runs L_MAX + 2 cycles with both readies 0
        for _ in range(len(tokens) * 20 + len(heads) * 20 + L_MAX + 100):
            if ti >= len(tokens) and hi >= len(heads):
                break
            tv = ti < len(tokens) and self.rng.random() < valid_prob
            hv = hi < len(heads) and self.rng.random() < valid_prob
            dut.tacc_valid.value = int(tv)
            if ti < len(tokens):
                dut.tacc_idx.value, dut.tacc_prob.value = tokens[ti]
            dut.hacc_valid.value = int(hv)
            if hi < len(heads):
                dut.hacc_idx.value, dut.hacc_val.value = heads[hi]
            await ReadOnly()
            t_taken = tv and int(dut.tacc_ready.value)
            h_taken = hv and int(dut.hacc_ready.value)
            await RisingEdge(dut.clk)
            ti += int(t_taken)
            hi += int(h_taken)
        else:
            raise AssertionError("accumulation streams stalled")
        dut.tacc_valid.value = 0
        dut.hacc_valid.value = 0

    async def scan(self, heads, all_, n, ready_prob=1.0):
        """Run one scan; returns the list of (index, importance). Checks last / done / count."""
        dut = self.dut
        await self.command(scan_start=1, scan_heads=int(heads), scan_all=int(all_), scan_n=n)
        got = []
        lasts = []
        cycle = 0
        for _ in range(int((n + 20) * 4 / ready_prob) + 100):
            cycle += 1
            ready = self.rng.random() < ready_prob
            dut.scan_ready.value = int(ready)
            await ReadOnly()
            if int(dut.scan_valid.value) and ready:
                got.append((int(dut.scan_idx.value), int(dut.scan_imp.value)))
                lasts.append(int(dut.scan_last.value))
            done = int(dut.scan_done.value)
            if done:
                count = int(dut.scan_count.value)
                assert int(dut.op_ready.value), "op_ready low in the scan_done cycle"
            await RisingEdge(dut.clk)
            if done:
                break
        else:
            raise AssertionError(f"scan heads={heads} all={all_} n={n} never finished")
        dut.scan_ready.value = 0
        self.last_scan_cycles = cycle
        what = f"scan heads={heads} all={all_} n={n}"
        assert count == len(got), f"{what}: scan_count {count}, {len(got)} entries emitted"
        assert lasts == [0] * (len(got) - 1) + [1] * bool(got), f"{what}: scan_last misplaced"
        if ready_prob >= 1.0:
            # Documented latency: scan_done K + 4 cycles after the take edge (2 when empty).
            want_cycles = len(got) + 4 if got else 2
            assert cycle == want_cycles, f"{what}: done after {cycle} cycles, not {want_cycles}"
        return got

    async def prune(self, heads, n, winners, finish="last", valid_prob=1.0):
        """prune_begin, stream the winners, finish with win_last / prune_end."""
        dut = self.dut
        await self.command(prune_begin=1, prune_heads=int(heads), prune_n=n)
        i = 0
        use_last = finish == "last" and winners
        for _ in range(len(winners) * 20 + 100):
            if i >= len(winners):
                break
            v = self.rng.random() < valid_prob
            final = i == len(winners) - 1
            dut.win_valid.value = int(v)
            dut.win_idx.value = winners[i]
            dut.win_last.value = int(bool(use_last) and final)
            dut.prune_end.value = int(finish == "end_same" and final and v)
            await ReadOnly()
            taken = v and int(dut.win_ready.value)
            await RisingEdge(dut.clk)
            i += int(taken)
            if taken and final and finish == "end_same":
                dut.prune_end.value = 0
                dut.win_valid.value = 0
                return
        else:
            raise AssertionError("winner stream stalled")
        dut.win_valid.value = 0
        dut.win_last.value = 0
        if use_last:
            return
        dut.prune_end.value = 1  # "end", "end_same" with no winners, or no winners at all
        for _ in range(20):
            await ReadOnly()
            taken = int(dut.win_ready.value)
            await RisingEdge(dut.clk)
            if taken:
                break
        else:
            raise AssertionError("prune_end never taken")
        dut.prune_end.value = 0

    async def read_ports(self, head_id, token_idx):
        dut = self.dut
        dut.rd_head_id.value = head_id
        dut.rd_token_idx.value = token_idx
        await ReadOnly()
        res = (int(dut.rd_head_kept.value), int(dut.rd_head_imp.value),
               int(dut.rd_token_kept.value), int(dut.head_kept_map.value))
        await RisingEdge(dut.clk)
        return res


# ---------------------------------------------------------------------------- checks
async def check_scan(drv, model, heads, all_, n, ready_prob=1.0):
    got = await drv.scan(heads, all_, n, ready_prob)
    want = model_scan(model, heads, all_, n)
    if got != want:
        diff = [(g, w) for g, w in zip(got, want, strict=False) if g != w][:5]
        raise AssertionError(f"scan heads={heads} all={all_} n={n}: {len(got)} entries vs "
                             f"model {len(want)}; first differences (dut, model): {diff}")
    return got


async def check_ports(drv, model, rng, samples=4):
    for _ in range(samples):
        h = rng.randrange(H_MAX)
        t = rng.randrange(L_MAX)
        hk, himp, tk, hmap = await drv.read_ports(h, t)
        want_map = sum(1 << i for i in range(H_MAX) if bool(model.head_kept[i]))
        assert hmap == want_map, f"head_kept_map {hmap:#x}, model {want_map:#x}"
        assert hk == int(model.head_kept[h]), f"rd_head_kept[{h}]"
        assert himp == int(model.head_importance[h]), f"rd_head_imp[{h}] {himp}"
        assert tk == int(model.token_kept[t]), f"rd_token_kept[{t}]"


async def check_full(drv, model, rng, ready_prob=1.0):
    """Whole state: every token/head importance and both kept bitmaps."""
    await check_scan(drv, model, False, True, L_MAX, ready_prob)
    await check_scan(drv, model, False, False, L_MAX, ready_prob)
    await check_scan(drv, model, True, True, H_MAX, ready_prob)
    await check_scan(drv, model, True, False, H_MAX, ready_prob)
    await check_ports(drv, model, rng)


async def prune_flow(drv, model, rng, heads, n, keep, finish=None, ready_prob=1.0,
                     force_apply=False):
    """The core's prune: scan the kept candidates, top-k (model function), apply."""
    cands = await check_scan(drv, model, heads, False, n, ready_prob)
    finish = finish or rng.choice(["last", "end", "end_same"])
    if keep and keep < len(cands):
        values = torch.tensor([v for _, v in cands], dtype=torch.int64)
        winners = [cands[i][0] for i in topk_indices(values, keep).tolist()]
        await drv.prune(heads, n, winners, finish, valid_prob=rng.choice([1.0, 0.6]))
    elif keep and force_apply:
        # keep >= candidates: the core skips the prune; applying it with every candidate as a
        # winner must change nothing either.
        await drv.prune(heads, n, [i for i, _ in cands], finish)
    if keep:
        (model.prune_heads if heads else model.prune_tokens)(n, keep)


def random_probs(rng, count):
    mode = rng.random()
    if mode < 0.2:
        return [32768] * count
    if mode < 0.4:
        return [rng.choice([0, 1, 32767, 32768, 65535]) for _ in range(count)]
    return [rng.randrange(32769) for _ in range(count)]


async def start(dut):
    seed = cocotb.RANDOM_SEED
    dut._log.info("seed %d (rerun with COCOTB_RANDOM_SEED)", seed)
    rng = random.Random(seed)
    # The C clock: long held-valid stretches then run without Python on every edge.
    Clock(dut.clk, PERIOD, unit="ns", impl="gpi").start()
    drv = Driver(dut, rng)
    await drv.reset()
    return drv, rng, new_model()


# ---------------------------------------------------------------------------- tests
@cocotb.test()
async def reset_state_and_corners(dut):
    drv, rng, model = await start(dut)
    await check_full(drv, model, rng)
    # n = 0 scans terminate with count 0; n = 1; limit beyond H_MAX for heads.
    for heads in (False, True):
        for all_ in (False, True):
            assert await drv.scan(heads, all_, 0) == []
    await check_scan(drv, model, False, False, 1)
    await check_scan(drv, model, True, False, L_MAX)
    # Every token equally important: the top-k tie rule (lower index) decides, the scan must
    # still come out ascending.
    keys = list(range(L_MAX))
    await drv.accumulate(tokens=[(t, 1000) for t in keys])
    model_acc_tokens(model, keys, [1000] * L_MAX)
    await prune_flow(drv, model, rng, False, L_MAX, 5)
    await check_full(drv, model, rng)
    # keep 1 at n = L_MAX, then keep all (applied with every candidate as winner: no change).
    await drv.command(clear_tokens=1)
    model.clear_tokens()
    probs = random_probs(rng, L_MAX)
    await drv.accumulate(tokens=list(zip(keys, probs, strict=True)))
    model_acc_tokens(model, keys, probs)
    await prune_flow(drv, model, rng, False, L_MAX, 1, ready_prob=0.5)
    await check_scan(drv, model, False, False, L_MAX)
    await prune_flow(drv, model, rng, False, L_MAX, 7, force_apply=True)
    await check_full(drv, model, rng)
    # Prune with zero winners (clears every kept bit below n), prune_end finish.
    await drv.prune(False, 17, [], "end")
    model.prune_tokens(17, 0)  # keep 0 of the candidates below 17: none kept there
    await check_scan(drv, model, False, False, L_MAX)
    await check_scan(drv, model, False, False, 17)  # empty scan with n > 0
    # Clear requested together with a scan: the scan sees the cleared state.
    await drv.command(clear_tokens=1, clear_heads=1, scan_start=1, scan_heads=0, scan_all=0,
                      scan_n=L_MAX)
    model.clear_tokens()
    model.clear_heads()
    got = []
    for _ in range(TIMEOUT):
        dut.scan_ready.value = 1
        await ReadOnly()
        if int(dut.scan_valid.value):
            got.append((int(dut.scan_idx.value), int(dut.scan_imp.value)))
        done = int(dut.scan_done.value)
        await RisingEdge(dut.clk)
        if done:
            break
    assert got == model_scan(model, False, False, L_MAX), "clear + scan in one request"
    await check_full(drv, model, rng)
    # Commands wait for / stop the accumulation streams: clear_heads requested while a token
    # stream runs (the two commute, so the model order does not matter).
    keys = list(range(0, L_MAX, 3))
    probs = random_probs(rng, len(keys))
    acc = cocotb.start_soon(drv.accumulate(tokens=list(zip(keys, probs, strict=True))))
    await ClockCycles(dut.clk, 50)
    await drv.command(clear_heads=1)
    await acc
    model_acc_tokens(model, keys, probs)
    model.clear_heads()
    await check_full(drv, model, rng)
    # Back-to-back accumulation of the same token (forwarding) and random order.
    seq = [rng.choice([3, 3, 4, L_MAX - 1]) for _ in range(200)]
    probs = random_probs(rng, len(seq))
    await drv.accumulate(tokens=list(zip(seq, probs, strict=True)))
    model_acc_tokens_seq(model, seq, probs)
    seq = [rng.randrange(L_MAX) for _ in range(300)]
    probs = random_probs(rng, len(seq))
    await drv.accumulate(tokens=list(zip(seq, probs, strict=True)), valid_prob=0.7)
    model_acc_tokens_seq(model, seq, probs)
    await check_full(drv, model, rng, ready_prob=0.3)


@cocotb.test()
async def saturation(dut):
    """token_imp and head_imp saturate at 2^32-1 (held valid: one entry per cycle)."""
    drv, rng, model = await start(dut)

    async def hold(cycles):
        # Called just after a rising edge: `cycles` more edges take the held entry, then the
        # valid drops in the middle of the following cycle, and we realign to the next edge.
        await Timer(cycles * PERIOD + PERIOD // 2, unit="ns")
        dut.tacc_valid.value = 0
        dut.hacc_valid.value = 0
        await RisingEdge(dut.clk)

    async def hold_token(t, p, cycles):
        assert int(dut.tacc_ready.value)
        dut.tacc_valid.value = 1
        dut.tacc_idx.value = t
        dut.tacc_prob.value = p
        await hold(cycles)  # tacc_ready stays 1: no command is requested
        dut.tacc_valid.value = 0
        model_acc_tokens(model, [t], [p * cycles])  # monotone: same as `cycles` clamped adds

    async def hold_head(h, v, cycles):
        dut.hacc_valid.value = 1
        dut.hacc_idx.value = h
        dut.hacc_val.value = v
        await hold(cycles)
        dut.hacc_valid.value = 0
        model_acc_head(model, h, v * cycles)

    await hold_token(5, 32768, (1 << 17) - 1)    # 2^32 - 2^15
    await check_scan(drv, model, False, True, 8)
    await hold_token(5, 32767, 1)                # exactly 2^32 - 1
    await hold_token(9, 32768, 1 << 17)          # 2^32: carries out, saturates
    await hold_token(9, 32768, 2)
    await check_scan(drv, model, False, True, 16)
    await hold_token(5, 1, 1)                    # +1 at the maximum
    await hold_token(L_MAX - 1, 65535, 65538)    # largest 16-bit value
    await check_scan(drv, model, False, True, L_MAX)
    assert int(model.token_importance[5]) == IMP_MAX
    hmax = (1 << 22) - 1
    await hold_head(3, hmax, 1024)               # 2^32 - 1024
    await check_scan(drv, model, True, True, H_MAX)
    await hold_head(3, 1023, 1)                  # exactly 2^32 - 1
    await hold_head(H_MAX - 1, hmax, 1026)       # saturates
    await check_full(drv, model, rng)
    await hold_head(3, 1, 1)
    await check_ports(drv, model, rng)
    assert int(model.head_importance[3]) == IMP_MAX


@cocotb.test()
async def random_operations(dut):
    drv, rng, model = await start(dut)
    ops = ["clear", "acc", "prune_t", "prune_h", "scan", "reselect", "rescale"]
    stats = dict.fromkeys(ops + ["prune_t_removing", "prune_h_removing"], 0)
    for step in range(STEPS):
        op = rng.choices(ops, [2, 4, 2, 2, 2, 1, 1])[0]
        stats[op] += 1
        dut._log.debug("step %d: %s", step, op)
        if op == "clear":
            ct, ch = rng.choice([(1, 0), (0, 1), (1, 1)])
            await drv.command(clear_tokens=ct, clear_heads=ch)
            if ct:
                model.clear_tokens()
            if ch:
                model.clear_heads()
        elif op == "acc":
            # One job's accumulation: the kept tokens below n_tokens, ascending, plus a head.
            n = rng.choice([rng.randrange(L_MAX + 1), L_MAX])
            keys = torch.nonzero(model.token_kept[:n]).flatten().tolist()
            if rng.random() < 0.3:
                keys = sorted(rng.sample(keys, len(keys) // 2))  # a random kept subset
            probs = random_probs(rng, len(keys))
            h = rng.randrange(H_MAX)
            hv = rng.choice([rng.randrange(1 << 22), (1 << 22) - 1, 0])
            await drv.accumulate(tokens=list(zip(keys, probs, strict=True)), heads=[(h, hv)],
                                 valid_prob=rng.choice([1.0, 0.5]))
            if keys:
                model_acc_tokens(model, keys, probs)
            model_acc_head(model, h, hv)
        elif op in ("prune_t", "prune_h"):
            heads = op == "prune_h"
            lim = H_MAX if heads else L_MAX
            n = rng.choice([0, lim, rng.randrange(lim + 1)])
            count = int(model.head_kept[:n].sum() if heads else model.token_kept[:n].sum())
            keep = rng.choice([0, 1, count, count + 1, rng.randrange(count + 2),
                               max(1, count // 10), count // 2, max(1, count - 1)])
            stats[op + "_removing"] += int(0 < keep < count)
            await prune_flow(drv, model, rng, heads, n, keep,
                             ready_prob=rng.choice([1.0, 0.5]), force_apply=rng.random() < 0.5)
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
            await check_scan(drv, model, heads, rng.random() < 0.5,
                             rng.choice([0, lim, rng.randrange(lim + 1)]),
                             ready_prob=rng.choice([1.0, 0.7, 0.2]))
        await check_ports(drv, model, rng, samples=1)
        if step % 8 == 7:
            await check_full(drv, model, rng)
    await check_full(drv, model, rng)
    dut._log.info("operations: %s; "
                  "tokens kept at the end %d, heads kept %d", stats,
                  int(model.token_kept.sum()), int(model.head_kept.sum()))


@cocotb.test()
async def scan_cycles(dut):
    """Cycle figures of a full-range scan: all kept, and 10 % kept after a prune."""
    drv, rng, model = await start(dut)
    await check_scan(drv, model, False, False, L_MAX)
    all_cycles = drv.last_scan_cycles
    keys = list(range(L_MAX))
    probs = [rng.randrange(32769) for _ in keys]
    await drv.accumulate(tokens=list(zip(keys, probs, strict=True)))
    model_acc_tokens(model, keys, probs)
    keep = L_MAX // 10
    await prune_flow(drv, model, rng, False, L_MAX, keep)
    got = await check_scan(drv, model, False, False, L_MAX)
    tenth_cycles = drv.last_scan_cycles
    # Cycles counted from the edge that takes scan_start to the scan_done cycle, ready held 1.
    dut._log.info("scan n=%d: all kept %d entries in %d cycles; %d kept in %d cycles",
                  L_MAX, L_MAX, all_cycles, len(got), tenth_cycles)
    assert all_cycles <= L_MAX + 4, f"all-kept scan took {all_cycles} cycles"
    assert tenth_cycles <= len(got) + 4, f"10% scan took {tenth_cycles} cycles"


async def wait_op_ready(dut):
    """Cycles from the edge that took a command to the first cycle with op_ready = 1."""
    for cycle in range(1, TIMEOUT):
        await ReadOnly()
        if int(dut.op_ready.value):
            await RisingEdge(dut.clk)
            return cycle
        await RisingEdge(dut.clk)
    raise AssertionError("op_ready never returned")


@cocotb.test()
async def reselect_and_rescale(dut):
    """Section 7 steps 3 and 4: reselect restores kept bits below n, importance untouched;
    rescale shifts every entry (written ones; unwritten read 0) in L_MAX + 2 cycles."""
    drv, rng, model = await start(dut)
    keys = list(range(L_MAX))
    probs = random_probs(rng, L_MAX)
    await drv.accumulate(tokens=list(zip(keys, probs, strict=True)))
    model_acc_tokens(model, keys, probs)
    await prune_flow(drv, model, rng, False, L_MAX, L_MAX // 10)
    await prune_flow(drv, model, rng, True, H_MAX, 3)
    # reselect of part of the range, of nothing, of everything
    for n in (L_MAX // 2 + 3, 0, 1, L_MAX):
        await drv.command(reselect=1, reselect_n=n)
        model.reselect_tokens(n)
        await check_scan(drv, model, False, False, L_MAX)
        await prune_flow(drv, model, rng, False, L_MAX, L_MAX // 7)
    await check_full(drv, model, rng)
    # saturated and large values, some entries never written (read as 0)
    await drv.command(clear_tokens=1)
    model.clear_tokens()
    big = [(5, 65535)] * 3 + [(L_MAX - 1, 40000), (7, 1), (9, 2), (11, 3)]
    await drv.accumulate(tokens=big)
    model_acc_tokens_seq(model, [t for t, _ in big], [p for _, p in big])
    for shift in (1, 0, 2, 31, 5):
        await drv.command(rescale=1, rescale_shift=shift)
        cycles = await wait_op_ready(dut)
        model.rescale_tokens(shift)
        assert cycles == L_MAX + 2, f"rescale took {cycles} cycles, not L_MAX + 2"
        await check_scan(drv, model, False, True, L_MAX)
        await drv.accumulate(tokens=[(5, 32768), (L_MAX - 1, 123)])
        model_acc_tokens(model, [5, L_MAX - 1], [32768, 123])
    await check_full(drv, model, rng)
    # everything requested in one edge: the clear first, then the rescale sees zeros; the
    # prune requested with it waits for the rescale
    keys = list(range(0, L_MAX, 2))
    probs = random_probs(rng, len(keys))
    await drv.accumulate(tokens=list(zip(keys, probs, strict=True)))
    model_acc_tokens(model, keys, probs)
    await prune_flow(drv, model, rng, False, L_MAX, 40)
    await drv.command(reselect=1, reselect_n=L_MAX // 4, rescale=1, rescale_shift=3,
                      prune_begin=1, prune_heads=0, prune_n=L_MAX // 4)
    await ReadOnly()
    assert not int(dut.win_ready.value), "prune started together with the rescale"
    await RisingEdge(dut.clk)
    model.rescale_tokens(3)
    model.reselect_tokens(L_MAX // 4)
    await wait_op_ready(dut)
    # the pending prune is taken now; finish it with no winners (a keep-0 prune)
    await drv.prune(False, L_MAX // 4, [], "end")
    model.prune_tokens(L_MAX // 4, 0)
    await check_full(drv, model, rng)
    await drv.command(clear_tokens=1, reselect=1, reselect_n=7, rescale=1, rescale_shift=4)
    model.clear_tokens()
    await wait_op_ready(dut)
    await check_full(drv, model, rng)
