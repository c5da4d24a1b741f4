"""AXI4 read responder backed by a DramImage for data and a DRAM timing model for time.

One responder serves one read channel of an `AxiReadPort`. An accepted burst is split into the
DRAM model's transactions (tx_bytes each, e.g. 64 B on DDR4, so two 32-byte beats share one);
its R beats are driven no earlier than the cycle their transaction's data returns. Knobs add
AR and R back-pressure and random extra latency; error ranges in the DramImage answer SLVERR or
DECERR on the beats they cover. The channel sleeps on events when it has nothing to do.

cocotbext-axi's AxiSlaveRead is not used: it asks its target for one beat at a time, after the
previous beat was sent, so it cannot keep several bursts in flight in a DRAM model, and it can
only answer SLVERR.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

import cocotb
from cocotb.triggers import ClockCycles, Event, ReadOnly, RisingEdge, ValueChange

from spatten_dv.models.memory import DramImage


@dataclass
class ResponderKnobs:
    ar_ready_prob: float = 1.0  # chance AR is ready in a cycle
    r_valid_prob: float = 1.0  # chance a ready beat is offered in a cycle (R gaps)
    extra_latency: tuple[int, int] = (0, 0)  # random extra cycles per burst, inclusive
    max_outstanding: int = 16  # bursts accepted and not yet fully returned
    seed: int = 0


@dataclass
class BurstRecord:
    channel: int
    addr: int
    beats: int
    ar_cycle: int
    last_beat_cycle: int = -1
    resp: int = 0
    beat_cycles: list[int] = field(default_factory=list)  # cycle of each R handshake


@dataclass
class _Beat:
    addr: int
    ready: Event
    resp: int
    data: int


@dataclass
class _Burst:
    record: BurstRecord
    beats: list[_Beat] = field(default_factory=list)
    extra: int = 0


class AxiReadResponder:
    def __init__(self, port, channel: int, clk, memory: DramImage, target,
                 tx_bytes: int = 64, knobs: ResponderKnobs | None = None):
        self.port, self.ch, self.clk = port, channel, clk
        self.memory, self.target, self.tx_bytes = memory, target, tx_bytes
        self.knobs = knobs or ResponderKnobs()
        self.rng = random.Random(self.knobs.seed * 7919 + channel)
        self.beat_bytes = port.width["rdata"] // 8
        self.bursts: list[BurstRecord] = []
        self.keep_records = True  # off for long runs: listeners still get every record
        self._queue: deque[_Burst] = deque()
        self._queued = Event()
        self._tasks = []
        self.listeners = []  # called with each BurstRecord once its last beat was taken

    def start(self) -> None:
        self._tasks = [cocotb.start_soon(self._ar_loop()), cocotb.start_soon(self._r_loop())]

    def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        self._tasks = []

    @property
    def outstanding(self) -> int:
        return len(self._queue)

    # ------------------------------------------------------------------ AR channel
    def _accept(self, addr: int, arlen: int, arsize: int) -> None:
        size = 1 << arsize
        if size != self.beat_bytes:
            raise AssertionError(f"ARSIZE {arsize} ({size} B) on a {self.beat_bytes}-byte bus")
        n = arlen + 1
        if addr // 4096 != (addr + n * size - 1) // 4096:
            raise AssertionError(f"burst at {addr:#x} of {n} beats crosses a 4 KiB boundary")
        record = BurstRecord(self.ch, addr, n, self.target.cycle())
        burst = _Burst(record, extra=self.rng.randint(*self.knobs.extra_latency))
        tx_events: dict[int, Event] = {}
        blob = self.memory.read(addr, n * size)  # one read per burst, sliced per beat
        for i in range(n):
            a = addr + i * size
            tx = a - a % self.tx_bytes
            if tx not in tx_events:
                tx_events[tx] = self.target.submit(tx)
            resp = self.memory.error_for([a], size)
            data = int.from_bytes(blob[i * size:(i + 1) * size], "little")
            burst.beats.append(_Beat(a, tx_events[tx], resp, data))
            record.resp = record.resp or resp
        if self.keep_records:
            self.bursts.append(record)
        self._queue.append(burst)
        self._queued.set()

    async def _ar_loop(self) -> None:
        port, ch = self.port, self.ch
        arvalid = port.signals["arvalid"]
        while True:
            if not port.get("arvalid", ch):
                port.set("arready", ch, 0)
                await ValueChange(arvalid)  # sleep until some channel's ARVALID moves
                continue
            room = len(self._queue) < self.knobs.max_outstanding
            ready = room and self.rng.random() < self.knobs.ar_ready_prob
            port.set("arready", ch, int(ready))
            await ReadOnly()
            fire = ready and port.get("arvalid", ch)
            if fire:
                self._accept(port.get("araddr", ch), port.get("arlen", ch),
                             port.get("arsize", ch))
            await RisingEdge(self.clk)

    # ------------------------------------------------------------------ R channel
    async def _r_loop(self) -> None:
        port, ch = self.port, self.ch
        gaps = self.knobs.r_valid_prob < 1.0  # no random draw per beat without R gaps
        while True:
            if not self._queue:
                port.set("rvalid", ch, 0)
                self._queued.clear()
                await self._queued.wait()
                await RisingEdge(self.clk)  # woken mid-cycle by AR: start on a cycle boundary
                continue
            burst = self._queue[0]
            port.set("rvalid", ch, 0)
            if burst.extra:
                await ClockCycles(self.clk, burst.extra)
            for i, beat in enumerate(burst.beats):
                if not beat.ready.is_set():
                    port.set("rvalid", ch, 0)
                    await beat.ready.wait()  # set just after the edge of the data cycle
                while gaps and self.rng.random() >= self.knobs.r_valid_prob:
                    port.set("rvalid", ch, 0)
                    await RisingEdge(self.clk)
                port.set("rdata", ch, beat.data)
                port.set("rresp", ch, beat.resp)
                port.set("rlast", ch, int(i == len(burst.beats) - 1))
                port.set("rvalid", ch, 1)
                while True:
                    await ReadOnly()
                    fired = bool(port.get("rready", ch))
                    if fired:
                        burst.record.beat_cycles.append(self.target.cycle())
                    await RisingEdge(self.clk)
                    if fired:
                        break
            burst.record.last_beat_cycle = burst.record.beat_cycles[-1]
            self._queue.popleft()
            for listener in self.listeners:
                listener(burst.record)


def attach_read_responders(dut, clk, memory: DramImage, target, channels: int = 1,
                           prefix: str = "m_axi", tx_bytes: int = 64,
                           knobs: ResponderKnobs | None = None):
    """One responder per channel of `prefix`, started; returns (port, responders)."""
    from spatten_dv.verif.axi_read_port import AxiReadPort

    port = AxiReadPort(dut, prefix, channels)
    responders = [AxiReadResponder(port, ch, clk, memory, target, tx_bytes, knobs)
                  for ch in range(channels)]
    for r in responders:
        r.start()
    return port, responders
