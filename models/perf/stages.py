"""Cycle formula of every phase of a job (hdl/spatten_core.v FSM, one phase after another).

Symbols (KL: keys_per_cycle, the wide datapath's lanes, docs/architecture.md section 11.1):
m kept keys, nv values fetched, K candidates of a prune scan, C top-k comparators,
L softmax lanes, kq keys per cycle (Q.K), kv values per cycle (prob.V), F(plane) the fetch time
of a plane (models/perf/dram.py). r_cycles counts from the CHECK cycle (= 1) to the NEXT cycle.

  control       CHECK 1 + CLR 1 (clear, reselect, rescale) + HEADCHK 1 + VSEL 1 + ACC_H 1
                + NEXT 1 [+ L_MAX / KL + 1 with a rescale: the prune state's importance rows,
                KL entries a row, before it takes the next scan]
  prune (each)  PR_SCAN 1 + scan(K) [+ PR_BEGIN 1 + topk(K, keep) when keep < K]; a token
                prune's scan loads the engine KL entries a beat: scan(ceil(K / KL)) (the kept
                entries taken as consecutive); head scans stay one a cycle
  key list      PR_SCAN 1 + scan(m) when m = 0 (NO_TOKENS); otherwise the K MSB fetch starts
                with the list (KEY_FETCH_START cycles after PR_SCAN: first entry, fetch start)
                and follows the scan (one key per cycle), so the list costs PR_SCAN 1 +
                KEY_FETCH_START before the fetch; at KL > 1 the scan gives up to KL indices a
                beat from the current and the next non-empty 32-entry chunk (key_list_beats)
  scan(K)       K + 4 (2 when K = 0): the prune state emits one entry per cycle
  K pass (each) [PASS_START 1, LSB pass only] + max(F(plane), m / kq [, m: the scan, MSB])
                + PIPE_K + 2 ceil(m / L) [+ log2 L + 1 at L > 1] + SOFTMAX_TAIL
                (the softmax's load pass overlaps the fetch; its exp and output passes, n + 4
                and n + 3 cycles, and the 42-cycle divide follow the last score)
  V select      stage B (section 11), when v_topk < m: ceil(m / 8) cycles loading the
                probabilities into the top-k engine (VLOAD, 8 a cycle) + topk(m, v_topk)
  V pass        PASS_START 1 + max(F(V plane), nv / kv) + PIPE_V
  accumulate    ACC_T with acc_tokens: groups of KL consecutive key-list entries, each as many
                cycles as its most used importance bank (index mod KL) has entries (m at
                KL = 1); else 1
  topk(n, k)    1 + passes + emit + 1 (DONE)
                passes = sum over the quick-select passes of ceil(m_i / C) + 3, estimated
                from the expected quick-select figures (the values are data, not shape):
                sum m_i = 2n + 2n H(k/n) (Knuth; H the binary entropy in nats), 2 ln n
                passes, half a row of rounding per pass
                emit = 3 ceil(n / C) - 1 + k (read + mask + one idle cycle per row of C values,
                one cycle per winner; the last winner is taken to be in the last row)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from spatten_dv.models.descriptor import Status
from spatten_dv.models.params import DEFAULT_PARAMS
from spatten_dv.models.perf.bursts import NO_FETCH, FetchCount, count_fetch
from spatten_dv.models.perf.configs import PerfConfig
from spatten_dv.models.perf.dram import DramFit
from spatten_dv.models.perf.layout_bytes import fetch_beat_addresses
from spatten_dv.models.perf.shape import JobShape

PIPE_K = 6  # last beat -> score into the softmax: unpack reg, stage reg, 4 dot-product stages
SOFTMAX_TAIL = 50  # softmax: 4 (exp pipe) + 42 (divide) + 3 (output pipe) + done
PIPE_V = 4  # last beat -> pv_out_valid: unpack, stage, product, finishing
KEY_FETCH_START = 5  # scan take -> 2nd key written (an entry is offered once the next exists)
# the wide K pass (KL > 1) ends this many cycles sooner after its last beat than the gearbox
# formula minus the gearbox: measured, cyc_softmax of the four paper steps (docs/perf.md) is 3
# cycles a K pass below 2 ceil(m/8) + log2 8 + 1 + PIPE_K + SOFTMAX_TAIL (5th-95th percentile
# 3 to 2.5), of which the gearbox is one; the other two are not traced to a register
WIDE_PASS_EARLIER = 2
SCAN_CHUNK = 32  # the prune state's wide scan reads its kept bits 32 entries at a time

STAGES = ("control", "prune", "key_scan", "k_msb", "k_lsb", "v_select", "v", "accumulate")


def scan_cycles(entries: int) -> int:
    return entries + 4 if entries else 2


def key_list_beats(keys, lanes: int) -> int:
    """Beats of the key-list scan (the prune state's index-only wide scan, docs/architecture.md
    section 11.1; hdl/spatten_prune_state.v "scan"): a beat takes the next kept entries, at most
    `lanes`, from the rest of the current 32-entry chunk and the next non-empty chunk. One entry a
    beat at lanes = 1."""
    n = len(keys)
    if lanes == 1 or n == 0:
        return n
    chunks = [int(k) // SCAN_CHUNK for k in keys]
    beats = i = 0
    while i < n:
        c = chunks[i]
        nxt = next((chunks[j] for j in range(i, n) if chunks[j] != c), None)
        j = i
        while j < n and j - i < lanes and (chunks[j] == c or chunks[j] == nxt):
            j += 1
        i = j
        beats += 1
    return beats


def accumulate_cycles(keys, lanes: int) -> int:
    """Cycles of the token accumulation (ACC_T): groups of `lanes` consecutive key-list entries,
    each taking as many cycles as its most used importance bank (index mod lanes) has entries
    (hdl/spatten_prune_state.v "token accumulation"). m at lanes = 1."""
    n = len(keys)
    if lanes == 1:
        return n
    total = 0
    for g in range(0, n, lanes):
        banks = [int(k) % lanes for k in keys[g:g + lanes]]
        total += max(banks.count(b) for b in set(banks))
    return total


def softmax_passes(m: int, lanes: int, keys_per_cycle: int = 1) -> float:
    """Cycles of the softmax's exp and output passes after its last score, beyond the fixed
    tail: two passes of ceil(m / L) beats, log2(L) adder-tree registers, and at L > 1 the
    core's score gearbox (the last beat leaves it one cycle after the last score). On the wide
    datapath (KL = L > 1) the dot product's aligned beats are the softmax's beats (no gearbox)
    and the pass ends WIDE_PASS_EARLIER cycles sooner after its last beat."""
    if lanes == 1:
        return 2 * m
    if keys_per_cycle > 1:
        return 2 * math.ceil(m / lanes) + math.log2(lanes) - WIDE_PASS_EARLIER
    return 2 * math.ceil(m / lanes) + math.log2(lanes) + 1


def topk_candidates(n: int, k: int) -> float:
    """Expected candidates over all quick-select passes (Knuth: 2n + 2n H(k/n), H the entropy
    in nats; 3.39 n for the median, 2 n at the ends)."""
    a = k / n
    h = -(a * math.log(a) + (1 - a) * math.log(1 - a)) if 0 < a < 1 else 0.0
    return 2 * n + 2 * n * h


def topk_passes(n: int) -> int:
    """Expected quick-select passes: about 2 ln n."""
    return max(1, math.ceil(2 * math.log(n)))


def topk_cycles(n: int, k: int, comparators: int = 16) -> float:
    """Cycles of the top-k engine selecting k of n (start to done); 0 when k >= n or k = 0."""
    if k == 0 or n == 0 or k >= n:
        return 0
    p = topk_passes(n)
    # a pass reads ceil(m/C) rows: on average half a row more than m/C
    passes = topk_candidates(n, k) / comparators + p * (3 + 0.5)
    emit = 3 * math.ceil(n / comparators) - 1 + k
    return 1 + passes + emit + 1


def plane_fetch(shape: JobShape, plane: str, tx_bytes: int) -> FetchCount:
    base, width, tokens = {
        "k_msb": (shape.k_msb_base, shape.msb_bits, shape.keys),
        "k_lsb": (shape.k_lsb_base, shape.lsb_bits, shape.keys),
        "v": (shape.v_base, shape.v_bits, shape.values)}[plane]
    if tokens.size == 0:
        return NO_FETCH
    return count_fetch(fetch_beat_addresses(base, tokens, width), tx_bytes=tx_bytes)


@dataclass(frozen=True)
class Phase:
    """One piece of a job, in the order the core runs them (models/perf/pipeline.py schedules
    them on the two job stages).

    unit: "fix" (a fixed number of cycles), "fetch" (DRAM/R-bus work shared with a fetch of the
    other stage: `cycles` of it alone, of which a share `dram` is DRAM time and a share `beat`
    is R-bus time) or "state" (uses the prune state: a front-stage scan, or the back stage's
    token accumulation, which stalls while a scan runs).
    back: True for the back stage (V pass, accumulation, NEXT), False for the front stage.
    """

    stage: str
    cycles: float
    back: bool = False
    unit: str = "fix"
    dram: float = 0.0
    beat: float = 0.0


def _fetch_phases(stage: str, f: FetchCount, fit: DramFit, r: int, compute: float,
                  back: bool) -> list[Phase]:
    """A plane's fetch: the start-up (latency, the refresh due before it) fixed, the streaming
    (`busy` with its refresh share) shared; a consumer slower than the fetch (compute cycles)
    adds the difference. Sum alone = max(F(plane), compute)."""
    if f.beats == 0:
        return [Phase(stage, compute, back)] if compute else []
    busy = max(f.beats / r, f.transactions * fit.tx_cycles)
    work = busy * (1 + fit.refresh_overhead)
    total = fit.fetch_cycles(f.beats, f.transactions, r)
    out = [Phase(stage, total - work, back),
           Phase(stage, work, back, "fetch", f.transactions * fit.tx_cycles / busy,
                 f.beats / r / busy)]
    if compute > total:
        out.append(Phase(stage, compute - total, back))
    return out


def job_phases(shape: JobShape, cfg: PerfConfig, fit: DramFit) -> tuple[list[Phase], dict]:
    """(phases in order, fetch counts per plane) of one job; the phases' cycles sum to the
    job's sequential cycles (CHECK .. NEXT)."""
    ph: list[Phase] = [Phase("control", 1)]  # CHECK (r_cycles starts at 1 in CHECK)
    fetch = {"k_msb": NO_FETCH, "k_lsb": NO_FETCH, "v": NO_FETCH}
    next_ = Phase("control", 1, back=True)  # NEXT
    if shape.status not in (Status.OK, Status.HEAD_SKIPPED, Status.NO_TOKENS):
        return ph + [next_], fetch  # descriptor error: CHECK -> NEXT
    if shape.clear:
        ph.append(Phase("control", 1))  # CLR
    if shape.rescale:  # the prune state reads and writes its importance rows, KL a row, before
        # it takes the next scan (hdl/spatten_prune_state.v rescale: op_ready L_MAX/KL + 2
        # cycles after the take edge)
        ph.append(Phase("control", DEFAULT_PARAMS.max_tokens / cfg.keys_per_cycle + 1))
    for pr, lanes in ((shape.head_prune, 1), (shape.token_prune, cfg.keys_per_cycle)):
        if pr is None:
            continue
        # a token prune's scan loads the top-k engine KL entries a beat (consecutive kept
        # entries; the head scans stay one a cycle)
        ph.append(Phase("prune", 1 + scan_cycles(math.ceil(pr.candidates / lanes)),
                        unit="state"))
        if pr.keep < pr.candidates:
            ph.append(Phase("prune", 1 + topk_cycles(pr.candidates, pr.keep,
                                                     cfg.topk_comparators)))
    ph.append(Phase("control", 1))  # HEADCHK
    if shape.status == Status.HEAD_SKIPPED:
        return ph + [next_], fetch
    m, nv = shape.n_keys, shape.n_values
    if shape.status == Status.NO_TOKENS:
        return ph + [Phase("key_scan", 1 + scan_cycles(m), unit="state"), next_], fetch
    ph.append(Phase("key_scan", 1 + KEY_FETCH_START, unit="state"))
    r = cfg.r_beats_per_cycle
    planes = ["k_msb"] + (["k_lsb"] if shape.lsb_fetched else [])
    for plane in planes:
        f = fetch[plane] = plane_fetch(shape, plane, fit.tx_bytes)
        compute = m / cfg.keys_per_cycle
        if plane == "k_lsb":
            ph.append(Phase(plane, 1))  # PASS_START
        else:
            # the fetch follows the key-list scan (KL entries a beat at most)
            compute = max(compute, key_list_beats(shape.keys, cfg.keys_per_cycle))
        ph += _fetch_phases(plane, f, fit, r, compute, False)
        ph.append(Phase(plane, PIPE_K + softmax_passes(m, cfg.softmax_lanes, cfg.keys_per_cycle)
                        + SOFTMAX_TAIL))
    ph.append(Phase("control", 1))  # VSEL
    if shape.v_select:  # stage B: VLOAD (8 probabilities a cycle), then the engine
        ph.append(Phase("v_select", math.ceil(m / min(8, cfg.topk_comparators))
                        + topk_cycles(m, nv, cfg.topk_comparators), True))
    f = fetch["v"] = plane_fetch(shape, "v", fit.tx_bytes)
    ph.append(Phase("v", 1, True))  # PASS_START
    ph += _fetch_phases("v", f, fit, r, nv / cfg.values_per_cycle, True)
    ph.append(Phase("v", PIPE_V, True))
    ph.append(Phase("accumulate", accumulate_cycles(shape.keys, cfg.values_per_cycle), True,
                    "state") if shape.acc_tokens
              else Phase("accumulate", 1, True))
    ph.append(Phase("control", 1, True))  # ACC_H
    return ph + [next_], fetch


def job_stages(shape: JobShape, cfg: PerfConfig, fit: DramFit) -> tuple[dict, dict]:
    """(cycles per stage, fetch counts per plane) of one job run alone (sequential)."""
    phases, fetch = job_phases(shape, cfg, fit)
    cyc = dict.fromkeys(STAGES, 0.0)
    for p in phases:
        cyc[p.stage] += p.cycles
    return cyc, fetch
