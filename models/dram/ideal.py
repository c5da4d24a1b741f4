"""A fixed-latency ideal memory behind the same interface as `MemorySystem`.

Every request is accepted at once (or, with `max_outstanding`, while fewer than that many are in
flight) and completes `read_latency` / `write_latency` cycles after it arrives: no banks, no
queues, no refresh. Useful as a bound (what the accelerator would do with perfect memory) and
as a stand-in while debugging a requester.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

import numpy as np

from .device import INF
from .memory_system import ARRIVAL_MODELS, TraceResult
from .request import READ, WRITE, Request
from .stats import ChannelStats, RunStats
from .trace import Trace


class IdealMemory:
    def __init__(self, read_latency: int = 20, write_latency: int = 1,
                 max_outstanding: int | None = None, tCK_ns: float = 1.0, tx_bytes: int = 64):
        if read_latency < 1 or write_latency < 0:
            raise ValueError("latencies must be positive")
        self.read_latency = read_latency
        self.write_latency = write_latency
        self.max_outstanding = max_outstanding
        self.tCK_ns = tCK_ns
        self.tx_bytes = tx_bytes
        self.now = 0
        self.last_accept = 0
        self._in_flight: list[tuple[int, int, Request]] = []
        self._done: list[Request] = []
        self._seq = 0
        self._stats = ChannelStats()

    def make_request(self, addr: int, is_write: bool = False, tag=None) -> Request:
        kind = WRITE if is_write else READ
        return Request(kind, addr, 0, (0,), 0, 0, 0, (), kind, tag)

    def try_send(self, addr: int, is_write: bool = False, tag=None) -> Request | None:
        if self.max_outstanding is not None and len(self._in_flight) >= self.max_outstanding:
            return None
        req = self.make_request(addr, is_write, tag)
        req.arrive = self.now
        req.depart = self.now + (self.write_latency if is_write else self.read_latency)
        heapq.heappush(self._in_flight, (req.depart, self._seq, req))
        self._seq += 1
        self.last_accept = self.now
        stats = self._stats
        if is_write:
            stats.writes += 1
        else:
            stats.reads += 1
        return req

    def advance_to(self, cycle: int) -> None:
        if cycle < self.now:
            raise ValueError(f"cannot go back in time from cycle {self.now} to {cycle}")
        self._stats.ticks += cycle - self.now
        self.now = cycle
        stats = self._stats
        while self._in_flight and self._in_flight[0][0] <= cycle:
            req = heapq.heappop(self._in_flight)[2]
            if req.kind == READ:
                stats.reads_served += 1
                stats.read_latency_sum += req.latency
                stats.read_latencies[req.latency] += 1
            else:
                stats.writes_served += 1
            self._done.append(req)

    def step(self) -> None:
        self.advance_to(self.now + 1)

    def pop_completions(self) -> list[Request]:
        done, self._done = self._done, []
        return done

    def next_event_cycle(self) -> int:
        if self._done:
            return self.now + 1
        return self._in_flight[0][0] if self._in_flight else INF

    @property
    def busy(self) -> bool:
        return bool(self._in_flight or self._done)

    def drain(self) -> int:
        last = max((d for d, _, _ in self._in_flight), default=self.now)
        self.advance_to(max(last, self.now))
        return last

    def stats(self) -> RunStats:
        return RunStats(cycles=self.now, tCK_ns=self.tCK_ns, tx_bytes=self.tx_bytes,
                        channels=[self._stats], cycles_last_accept=self.last_accept)

    def run_trace(self, trace: Trace, arrival: str = "one_per_cycle",
                  progress: Callable[[int], None] | None = None) -> TraceResult:
        """Same arrival models as `MemorySystem.run_trace`."""
        if arrival not in ARRIVAL_MODELS:
            raise ValueError(f"unknown arrival model {arrival!r}")
        if self.max_outstanding is not None:
            raise ValueError("run_trace models an unbounded ideal memory")
        n = len(trace)
        arrive = np.arange(n, dtype=np.int64) if arrival == "one_per_cycle" \
            else np.zeros(n, dtype=np.int64)
        latency = np.where(trace.is_write, self.write_latency, self.read_latency)
        depart = arrive + latency
        reads = ~trace.is_write
        stats = self._stats
        stats.reads = stats.reads_served = int(reads.sum())
        stats.writes = stats.writes_served = int(trace.is_write.sum())
        stats.read_latency_sum = int(latency[reads].sum())
        if stats.reads:
            stats.read_latencies[self.read_latency] = stats.reads
        self.now = int(depart.max())
        stats.ticks = self.now
        self.last_accept = int(arrive.max())
        if progress is not None:
            progress(n)
        return TraceResult(self.stats(), arrive, depart)
