"""A multi-channel memory system: the channel mapper in front of one controller per channel.

Two ways to drive it:

* Incrementally, from an external clock (e.g. a cocotb AXI responder). `now` is the current
  controller cycle. `try_send(addr, is_write)` offers a request at `now` and returns the
  accepted `Request` (or None when that channel's queue is full; offer it again later);
  `advance_to(cycle)` simulates up to and including `cycle`; `pop_completions()` returns the
  requests completed by `now` (reads at their data-return cycle, writes when their WR issues),
  each with `.arrive`, `.depart` and the caller's `.tag`; `next_event_cycle()` is the first
  cycle after `now` at which anything can change, so a caller can sleep until then.

* A whole trace at once (`run_trace`), with Ramulator's trace-frontend arrival models:
  `one_per_cycle` (offer the next request every cycle, in order; a rejected request blocks the
  ones behind it) or `all_at_0` (everything available at cycle 0; each cycle, accept in order
  until the first rejection).

Both paths skip idle cycles: a controller only processes the cycles at which a command, a
refresh or an arrival can happen.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .address_mapper import ChannelMapper, make_mapper
from .config import SystemConfig
from .controller import Controller
from .device import INF
from .request import READ, WRITE, Request
from .stats import RunStats
from .trace import Trace

ARRIVAL_MODELS = ("one_per_cycle", "all_at_0")


@dataclass
class TraceResult:
    stats: RunStats
    arrive: np.ndarray  # per trace line, controller cycle it was accepted
    depart: np.ndarray  # per trace line, controller cycle it completed


class MemorySystem:
    def __init__(self, config: SystemConfig, log_commands: bool = False,
                 skip_idle_cycles: bool = True):
        config.validate()
        self.config = config
        self.controllers = [Controller(config, ch, log_commands, skip_idle_cycles)
                            for ch in range(config.channels)]
        self.channel_mapper = ChannelMapper(config.channels, config.dram.tx_bytes,
                                            config.interleave_bits)
        self.mapper = make_mapper(config.controller.mapper, config.dram)
        self.now = 0
        self.last_accept = 0
        self._completed: list[tuple[int, int, Request]] = []  # heap of (depart, seq, request)
        self._seq = 0
        self._harvested = [0] * len(self.controllers)

    # ---- incremental interface --------------------------------------------------------------

    def make_request(self, addr: int, is_write: bool = False, tag=None) -> Request:
        if addr < 0:
            raise ValueError(f"negative address {addr}")
        channel, local = self.channel_mapper.split(addr)
        fields = self.mapper.map(local)
        return self.controllers[channel].make_request(WRITE if is_write else READ, addr,
                                                      fields, tag)

    def try_send(self, addr: int, is_write: bool = False, tag=None) -> Request | None:
        """Offer a request at cycle `now`; None when its channel's queue is full."""
        req = self.make_request(addr, is_write, tag)
        if self.controllers[req.channel].send(req, self.now):
            self.last_accept = self.now
            return req
        return None

    def advance_to(self, cycle: int) -> None:
        """Simulate every controller cycle up to and including `cycle`."""
        if cycle < self.now:
            raise ValueError(f"cannot go back in time from cycle {self.now} to {cycle}")
        if cycle >= INF:
            raise ValueError("advance_to(INF): nothing is pending (check next_event_cycle())")
        for controller in self.controllers:
            controller.advance_to(cycle)
        self.now = cycle

    def step(self) -> None:
        self.advance_to(self.now + 1)

    def _harvest(self) -> None:
        for ch, controller in enumerate(self.controllers):
            retired = controller.retired
            for req in retired[self._harvested[ch]:]:
                heapq.heappush(self._completed, (req.depart, self._seq, req))
                self._seq += 1
            self._harvested[ch] = len(retired)

    def pop_completions(self) -> list[Request]:
        """Requests completed at or before `now`, in completion order."""
        self._harvest()
        done = []
        while self._completed and self._completed[0][0] <= self.now:
            done.append(heapq.heappop(self._completed)[2])
        return done

    def next_event_cycle(self) -> int:
        """The first cycle after `now` at which a command can issue or a request complete
        (INF when nothing is queued or in flight)."""
        self._harvest()
        t = min(c.next_tick for c in self.controllers)
        if all(c.idle for c in self.controllers):
            t = INF  # only refreshes remain; they are invisible to the requester
        if self._completed:
            t = min(t, max(self._completed[0][0], self.now + 1))
        return t

    @property
    def busy(self) -> bool:
        self._harvest()
        return bool(self._completed) or not all(c.idle for c in self.controllers)

    def drain(self) -> int:
        """Run until every accepted request has completed; returns the last completion cycle."""
        last = self.now
        while not all(c.idle for c in self.controllers):
            t = min(c.next_tick for c in self.controllers)
            if t >= INF:
                raise RuntimeError("memory system stalled with requests queued")
            self.advance_to(t)
        self._harvest()
        if self._completed:
            last = max(last, max(d for d, _, _ in self._completed))
        self.advance_to(max(last, self.now))
        return last

    def stats(self) -> RunStats:
        channels = [c.finalize(self.now) for c in self.controllers]
        return RunStats(cycles=self.now, tCK_ns=self.config.dram.tCK_ns,
                        tx_bytes=self.config.dram.tx_bytes, channels=channels,
                        cycles_last_accept=self.last_accept)

    # ---- whole traces -----------------------------------------------------------------------

    def _trace_requests(self, trace: Trace) -> list[Request]:
        channels, local = self.channel_mapper.split_many(trace.addrs)
        fields = [f.tolist() for f in self.mapper.map_many(local)]
        rows = list(zip(*fields, strict=True))
        kinds = trace.is_write.tolist()
        addrs = trace.addrs.tolist()
        controllers = self.controllers
        return [controllers[ch].make_request(WRITE if w else READ, a, f)
                for ch, w, a, f in zip(channels.tolist(), kinds, addrs, rows, strict=True)]

    def run_trace(self, trace: Trace, arrival: str = "one_per_cycle",
                  progress: Callable[[int], None] | None = None) -> TraceResult:
        """Run `trace` to completion on this (fresh) system; `progress(n)` is called with the
        number of newly accepted requests now and then."""
        if arrival not in ARRIVAL_MODELS:
            raise ValueError(f"unknown arrival model {arrival!r}; "
                             f"choose one of {', '.join(ARRIVAL_MODELS)}")
        if self.now or not all(c.idle for c in self.controllers):
            raise RuntimeError("run_trace needs a fresh memory system")
        requests = self._trace_requests(trace)
        controllers = self.controllers
        single = controllers[0] if len(controllers) == 1 else None
        greedy = arrival == "all_at_0"
        total = len(requests)
        accepted = 0
        reported = 0
        now = 0
        last_accept = 0
        while True:
            sent = False
            while accepted < total:
                req = requests[accepted]
                if not controllers[req.channel].send(req, now):
                    break
                accepted += 1
                sent = True
                if not greedy:
                    break
            if sent:
                last_accept = now
                if progress is not None and accepted - reported >= 4096:
                    progress(accepted - reported)
                    reported = accepted
                t = now + 1
            elif accepted == total and all(not (c.read_queue or c.write_queue or c.active)
                                           for c in controllers):
                break
            elif single is not None:
                t = single.next_tick
            else:
                t = min(c.next_tick for c in controllers)
            if t >= INF:
                raise RuntimeError("memory system stalled with requests queued")
            if single is not None:
                single.tick(t)
            else:
                for controller in controllers:
                    if controller.next_tick <= t:
                        controller.tick(t)
            now = t
        if progress is not None and accepted > reported:
            progress(accepted - reported)

        arrive = np.fromiter((r.arrive for r in requests), dtype=np.int64, count=total)
        depart = np.fromiter((r.depart for r in requests), dtype=np.int64, count=total)
        cycles = int(depart.max())
        self.now = max(now, cycles)
        self.last_accept = last_accept
        for controller in controllers:
            self._harvested[controller.channel_id] = len(controller.retired)
        stats = RunStats(cycles=cycles, tCK_ns=self.config.dram.tCK_ns,
                         tx_bytes=self.config.dram.tx_bytes,
                         channels=[c.finalize(cycles) for c in controllers],
                         cycles_last_accept=last_accept)
        return TraceResult(stats, arrive, depart)


def run_trace(config: SystemConfig, trace: Trace, arrival: str = "one_per_cycle",
              progress: Callable[[int], None] | None = None) -> TraceResult:
    return MemorySystem(config).run_trace(trace, arrival, progress)
