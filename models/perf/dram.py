"""Fetch time: a latency + bandwidth formula calibrated once on the DRAM timing model.

The environment serves the core's AXI reads through models/dram (verif/dram_target.py: one DRAM
controller cycle per core clock cycle, verif/axi_read_responder.py: a burst becomes one request
per DRAM transaction). Running that model per job is too slow for a performance model (about
5,000-10,000 requests/s), so `calibrate()` runs it ONCE per (preset, channels) on what the
fetcher does on a long contiguous plane: 16-beat bursts, at most 8 in flight, round robin over
the channels, R beats taken in burst order at r_beats_per_cycle. From two stream lengths it
takes the steady-state cycles per DRAM transaction (`tx_cycles`) and the start-up cycles
(`latency`: first AR to the first data, plus the pipeline fill), the stream starting where other
rows of the same banks are open (a plane start in the core is a row conflict).

    busy = max(beats / r_beats_per_cycle, transactions * tx_cycles)
    fetch_cycles = latency + busy + (busy + nRFC) * refresh_overhead

tx_cycles comes from streams that end before the first refresh; refresh_overhead (about 4 % on
DDR4-2400R: 433 cycles every 9,364) from a stream spanning three refresh intervals. A fetch is
delayed by the refreshes due while it runs and by one due up to nRFC before it starts (still
running when it starts): measured on the RTL, 76 % of the refreshes of a back-to-back decode step
hit a job, against about 60 % DRAM-busy time.

`peak_bytes_per_cycle` is the memory's pin bandwidth per core cycle (channels x pseudo-channels
x tx_bytes / nBL): the denominator of the bound ratio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from spatten_dv.errors import UserError

MAX_OUTSTANDING = 8  # hdl/spatten_core.v: spatten_fetcher MAX_OUTSTANDING
MAX_BURST = 16
BUS_BYTES = 32
REFRESH_SPAN = 3  # refresh intervals the calibration stream spans
PRIME_OFFSET = 0x100_0000  # 16 MiB: other rows of the same banks
PRIME_BURSTS = 8
UNLIMITED = 64  # beats per cycle standing for 'no core-side limit' in the calibration


@dataclass(frozen=True)
class DramFit:
    preset: str
    channels: int
    tx_bytes: int
    latency: float  # cycles from the fetch start to the first data beat (start-up)
    tx_cycles: float  # steady-state cycles per DRAM transaction (all channels), no refresh
    peak_bytes_per_cycle: float
    refresh_overhead: float = 0.0  # share of DRAM-busy time refresh takes (long stream)
    refresh_window: float = 0.0  # nRFC: a refresh due this long before a fetch also delays it

    def fetch_cycles(self, beats: int, transactions: int, r_beats_per_cycle: int = 1) -> float:
        if beats == 0:
            return 0.0
        busy = max(beats / r_beats_per_cycle, transactions * self.tx_cycles)
        return self.latency + busy + (busy + self.refresh_window) * self.refresh_overhead


def _memory(preset: str, channels: int, ideal_latency: int):
    from spatten_dv.models.dram import IdealMemory, MemorySystem, SystemConfig
    from spatten_dv.models.dram.presets import TIMING_PRESETS

    if preset == "ideal":
        return IdealMemory(read_latency=ideal_latency), 64, float("inf")
    if preset not in TIMING_PRESETS:
        raise UserError(f"--dram {preset!r}: choose ideal or one of {', '.join(TIMING_PRESETS)}")
    sysc = SystemConfig.from_presets(TIMING_PRESETS[preset].standard, preset, channels=channels)
    d = sysc.dram
    pseudo = d.level_sizes[1] if "PseudoChannel" in d.standard.levels else 1
    peak = channels * pseudo * d.tx_bytes / d.timings["nBL"]
    return MemorySystem(sysc), d.tx_bytes, peak


def _refresh_timing(preset: str, channels: int) -> tuple[int, int]:
    """(nREFI, nRFC) of the preset in controller cycles ((0, 0): the ideal memory)."""
    if preset == "ideal":
        return 0, 0
    from spatten_dv.models.dram import SystemConfig
    from spatten_dv.models.dram.presets import TIMING_PRESETS

    sysc = SystemConfig.from_presets(TIMING_PRESETS[preset].standard, preset, channels=channels)
    t = sysc.dram.timings
    return int(t.get("nREFI", 0)), int(t.get("nRFC", 0))


def stream_cycles(preset: str, channels: int, bursts: int, ideal_latency: int = 20,
                  r_beats_per_cycle: int = 1,
                  max_outstanding: int = MAX_OUTSTANDING) -> tuple[int, int, int, float]:
    """Cycles to fetch `bursts` contiguous 16-beat bursts the way the fetcher does.

    Returns (cycles to the last beat, cycle of the first beat, transactions, peak B/cycle).
    """
    mem, tx_bytes, peak = _memory(preset, channels, ideal_latency)
    base = 0x1000_0000
    beat_tx = [(b * MAX_BURST + i) * BUS_BYTES // tx_bytes
               for b in range(bursts) for i in range(MAX_BURST)]
    # A job's planes start where other rows are open (the previous plane, the previous job):
    # read the same span PRIME_OFFSET away first (same banks, other rows) and start the clock
    # once it has returned, so the first accesses are row conflicts as in the core.
    for blk in sorted(set(beat_tx[:PRIME_BURSTS * MAX_BURST])):
        while mem.try_send(base + PRIME_OFFSET + blk * tx_bytes) is None:
            mem.advance_to(mem.now + 1)
            mem.pop_completions()
    while mem.busy:
        mem.advance_to(mem.now + 1)
        mem.pop_completions()
    t0 = mem.now
    # AR of burst b: its 16 beats are generated r_beats_per_cycle per cycle (the RTL: one), the
    # burst closes on the next beat (+1) and the AR slot hands it over (+1); at most
    # MAX_OUTSTANDING bursts in flight.
    pending: list[tuple[int, int]] = []  # (cycle the request reaches the controller, block)
    done_at: dict[int, int] = {}
    issued = consumed_bursts = 0
    beat = 0
    beat_budget = 0.0
    first_beat = -1
    cycle = 0
    n_tx = 0
    submitted: set[tuple[int, int]] = set()
    while beat < len(beat_tx):
        # AR issue (one per cycle)
        if (issued < bursts and issued - consumed_bursts < max_outstanding
                and cycle >= MAX_BURST * (issued + 1) / r_beats_per_cycle + 2):
            for i in range(MAX_BURST):
                blk = beat_tx[issued * MAX_BURST + i]
                if (issued, blk) not in submitted:
                    submitted.add((issued, blk))
                    pending.append((cycle + 1, blk))
                    n_tx += 1
            issued += 1
        # requests reach the controller, in order, while its queue has room
        if t0 + cycle > mem.now:
            mem.advance_to(t0 + cycle)
        while pending and pending[0][0] <= cycle:
            if mem.try_send(base + pending[0][1] * tx_bytes, tag=pending[0][1]) is None:
                break
            pending.pop(0)
        for req in mem.pop_completions():
            done_at[req.tag] = req.depart - t0
        # R side: beats in order, r_beats_per_cycle per cycle, once their data is back
        beat_budget = min(beat_budget + r_beats_per_cycle, r_beats_per_cycle)
        while (beat < len(beat_tx) and beat_budget >= 1 and beat // MAX_BURST < issued
               and done_at.get(beat_tx[beat], cycle + 1) < cycle):
            if first_beat < 0:
                first_beat = cycle
            beat += 1
            beat_budget -= 1
            if beat % MAX_BURST == 0:
                consumed_bursts += 1
        cycle += 1
    return cycle, first_beat, n_tx, peak


@lru_cache(maxsize=64)
def calibrate(preset: str = "DDR4_2400R", channels: int = 1, ideal_latency: int = 20,
              r_beats_per_cycle: int = 1, max_outstanding: int = MAX_OUTSTANDING) -> DramFit:
    """Latency and cycles per transaction of `preset` x `channels` (cached per process)."""
    if channels not in (1, 2, 4, 8, 16):
        raise UserError(f"--channels {channels}: must be 1, 2, 4, 8 or 16")
    short, probe = 8, 72
    # DRAM-only rate: the core side made (almost) infinitely fast, from a short and a probe
    # stream (the probe ends before the first refresh is due)...
    c1, _, t1, peak = stream_cycles(preset, channels, short, ideal_latency, UNLIMITED,
                                   max_outstanding)
    c2, _, t2, _ = stream_cycles(preset, channels, probe, ideal_latency, UNLIMITED,
                                 max_outstanding)
    tx_cycles = (c2 - c1) / (t2 - t1)
    # ...and the refresh overhead from a long stream spanning REFRESH_SPAN refresh intervals
    refi, rfc = _refresh_timing(preset, channels)
    overhead = 0.0
    if refi and c2 < refi:
        long_ = max(probe, math.ceil(probe * REFRESH_SPAN * refi / max(c2 - c1, 1)))
        c3, _, t3, _ = stream_cycles(preset, channels, long_, ideal_latency, UNLIMITED,
                                     max_outstanding)
        overhead = max(0.0, (c3 - c1) / ((t3 - t1) * tx_cycles) - 1)
    # start-up at the real core-side rate: what the short stream takes beyond its throughput
    c, _, t, _ = stream_cycles(preset, channels, short, ideal_latency, r_beats_per_cycle,
                               max_outstanding)
    latency = c - max(short * MAX_BURST / r_beats_per_cycle, t * tx_cycles)
    _, tx_bytes, _ = _memory(preset, channels, ideal_latency)
    return DramFit(preset, channels, tx_bytes, latency, tx_cycles, peak, overhead,
                   float(rfc) if overhead else 0.0)
