"""AXI4 read responder backed by a DramImage for data and a DRAM timing model for time.

One responder serves one read channel of an `AxiReadPort`. An accepted burst is split into the
DRAM model's transactions (tx_bytes each, e.g. 64 B on DDR4, so two 32-byte beats share one);
its R beats are driven no earlier than the cycle their transaction's data returns. Knobs add
AR and R back-pressure and random extra latency; error ranges in the DramImage answer SLVERR or
DECERR on the beats they cover. The channel sleeps on events when it has nothing to do.

With the testbench top `spatten_core_tb` (the port's `playout`), the R beats are played out by
an HDL FIFO per channel (verif/hdl/axi_r_playout.v) with the same timing, and no Python runs
per beat: an accepted burst is pushed whole in the cycle after its AR handshake (data through
a file, extra latency and R gaps drawn here), the DRAM target's completions release its beats
in channel order (one pin write per transaction, in the cycle its data returns), and the
channel wakes once per completed burst to read back the handshake cycles. With `spatten_core`
as the top, the R loop below drives the pins beat by beat as before.

cocotbext-axi's AxiSlaveRead is not used: it asks its target for one beat at a time, after the
previous beat was sent, so it cannot keep several bursts in flight in a DRAM model, and it can
only answer SLVERR.
"""

from __future__ import annotations

import os
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
    # cycle of each R handshake (with the HDL playout: read back only when the responder keeps
    # records, i.e. in unit tests; first_beat_cycle and last_beat_cycle are always set)
    beat_cycles: list[int] = field(default_factory=list)
    first_beat_cycle: int = -1


class _TxDone:
    """A DRAM transaction's completion tag with the HDL playout (DramTarget sets it in the
    cycle its data returns; the responder then releases the beats it holds)."""

    __slots__ = ("done",)

    def __init__(self):
        self.done = False

    def set(self) -> None:
        self.done = True


@dataclass
class _Beat:
    addr: int
    ready: Event | _TxDone
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
        self.beat_bytes = 0  # read from the port at start()
        self.bursts: list[BurstRecord] = []
        self.keep_records = True  # off for long runs: listeners still get every record
        self._queue: deque[_Burst] = deque()
        self._push = None  # HDL playout only: the burst to push after the next edge
        self._file = None
        self._queued = Event()
        self._tasks = []
        self.listeners = []  # called with each BurstRecord once its last beat was taken

    def start(self) -> None:
        self.beat_bytes = self.port.beat_bytes()
        if self.port.playout:
            self._start_playout()
            self._tasks = [cocotb.start_soon(self._ar_loop()),
                           cocotb.start_soon(self._done_loop())]
        else:
            self._tasks = [cocotb.start_soon(self._ar_loop()),
                           cocotb.start_soon(self._r_loop())]

    def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        self._tasks = []
        if self._file is not None:
            self._file.close()
            self._file = None
            if os.path.exists(self._file_path):  # no burst completed: the FIFO never opened it
                os.unlink(self._file_path)

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
        blob = self.memory.read(addr, n * size)  # one read per burst, sliced per beat
        if self.keep_records:
            self.bursts.append(record)
        self._queue.append(burst)
        if self.port.playout:
            self._accept_playout(burst, blob, size)
            return
        tx_events: dict[int, Event] = {}
        for i in range(n):
            a = addr + i * size
            tx = a - a % self.tx_bytes
            if tx not in tx_events:
                tx_events[tx] = self.target.submit(tx, polled=True)
            resp = self.memory.error_for([a], size)
            data = int.from_bytes(blob[i * size:(i + 1) * size], "little")
            burst.beats.append(_Beat(a, tx_events[tx], resp, data))
            record.resp = record.resp or resp
        self._queued.set()

    async def _ar_loop(self) -> None:
        port, ch = self.port, self.ch
        arvalid = port.signals["arvalid"]
        playout = port.playout
        # With the playout and no AR back-pressure arready simply stays high (the FIFO holds it
        # back when full): two pin writes per burst fewer.
        hold_ready = playout and self.knobs.ar_ready_prob >= 1.0
        while True:
            if not port.get("arvalid", ch):
                if not hold_ready:
                    port.set("arready", ch, 0)
                await ValueChange(arvalid)  # sleep until some channel's ARVALID moves
                continue
            # With the HDL playout the FIFO holds arready back while max_outstanding bursts
            # are in flight (it knows in the cycle after a last beat that its slot is free).
            room = playout or len(self._queue) < self.knobs.max_outstanding
            ready = room and self.rng.random() < self.knobs.ar_ready_prob
            port.set("arready", ch, int(ready))
            await ReadOnly()
            fire = ready and port.get("arvalid", ch)
            if fire and playout:
                fire = port.get("tb_ar_ready", ch)
            if fire:
                self._accept(port.get("araddr", ch), port.get("arlen", ch),
                             port.get("arsize", ch))
            await RisingEdge(self.clk)
            if fire:
                self.target.poll()  # its transactions reach the DRAM controller now
            if self._push is not None:
                self._push_burst()  # the cycle after the AR handshake: pins may be written

    # ------------------------------------------------------------------ R playout in HDL
    def _start_playout(self) -> None:
        if not 1 <= self.knobs.max_outstanding <= 16:  # the FIFO holds 16 bursts of 16 beats
            raise AssertionError("the R playout FIFO holds 16 bursts: max_outstanding <= 16")
        self.port.set("tb_r_max_outstanding", self.ch, self.knobs.max_outstanding)
        # The FIFO reads beat data from this file (relative to the simulator's working folder,
        # like the HDL's $fopen); it is unlinked once the FIFO has opened it.
        self._file_path = os.path.abspath(f"axi_r_playout_{self.ch}.bin")
        self._file = open(self._file_path, "wb", buffering=0)  # noqa: SIM115 (kept open)
        self._push = None  # (data, beats, extra, resp, gaps) to push after the next edge
        self._toggle = (self.port._driven["tb_r_push"] >> self.ch) & 1
        # (transaction tag, its beats in this burst) in channel order, not yet released
        self._unreleased: deque[tuple[_TxDone, int]] = deque()
        self._released = 0
        self.target.after_completions.append(self._release)
        self._done_seen = 0
        self._cycle_offset = None  # tb_cycle - DramTarget cycle
        self._gap_rng = random.Random(self.knobs.seed * 7919 + self.ch + 104729)

    def _accept_playout(self, burst: _Burst, blob: bytes, size: int) -> None:
        record, n, addr = burst.record, burst.record.beats, burst.record.addr
        end, txb = addr + n * size, self.tx_bytes
        submit, unreleased = self.target.submit, self._unreleased
        if txb >= size:
            tx = addr - addr % txb
            while tx < end:  # one tag per transaction, with the number of its beats here
                tag = _TxDone()
                submit(tx, tag, True)
                unreleased.append((tag, (min(tx + txb, end) - max(tx, addr) + size - 1) // size))
                tx += txb
        else:  # transactions smaller than a beat: the one holding the beat's first byte
            for a in range(addr, end, size):
                tag = _TxDone()
                submit(a - a % txb, tag, True)
                unreleased.append((tag, 1))
        resp_bits = 0
        if self.memory.error_ranges:
            for i in range(n):
                resp = self.memory.error_for([addr + i * size], size)
                resp_bits |= resp << (2 * i)
                record.resp = record.resp or resp
        gap_bits = 0
        if self.knobs.r_valid_prob < 1.0:
            # Drawn here rather than per beat (and from a stream of their own): the same
            # distribution of R gaps as the per-beat loop, not the same draws.
            for i in range(n):
                gap = 0
                while gap < 0xFFFF and self._gap_rng.random() >= self.knobs.r_valid_prob:
                    gap += 1
                gap_bits |= gap << (16 * i)
        self._push = (blob[::-1], n, min(burst.extra, 0xFFFF), resp_bits, gap_bits)

    def _push_burst(self) -> None:
        port, ch = self.port, self.ch
        data, n, extra, resp, gaps = self._push
        self._push = None
        self._file.write(data)  # unbuffered: on disk before the FIFO's $fread at the edge
        port.set("tb_r_beats", ch, n)
        port.set("tb_r_extra", ch, extra)
        port.set("tb_r_resp", ch, resp)
        port.set("tb_r_gap", ch, gaps)
        self._toggle ^= 1
        port.set("tb_r_push", ch, self._toggle)

    def _release(self) -> None:
        """Release the leading beats whose data is back (DramTarget.after_completions)."""
        q, k = self._unreleased, 0
        while q and q[0][0].done:
            k += q.popleft()[1]
        if k:
            self._released = (self._released + k) & 0xFFFF
            self.port.set("tb_r_released", self.ch, self._released)

    async def _done_loop(self) -> None:
        port, ch = self.port, self.ch
        done = port.signals["tb_r_done"]
        # Verilator calls value-change callbacks once the whole edge is evaluated; Icarus calls
        # them mid-update, so there the registers of that edge are read in ReadOnly.
        settle = "verilator" not in cocotb.SIM_NAME.lower()
        while True:
            await ValueChange(done)
            if settle:
                await ReadOnly()
            count = port.get("tb_r_done", ch)
            if count == self._done_seen:
                continue  # another channel's burst
            if (count - self._done_seen) & 0xFFFF != 1:
                raise AssertionError(f"channel {ch}: several bursts completed at one edge")
            self._done_seen = count
            now = self.target.cycle()  # the cycle after the last handshake
            if self._cycle_offset is None:
                self._cycle_offset = int(port.dut.tb_cycle.value) - now
                self._file.flush()
                os.unlink(self._file_path)  # the FIFO has it open: no file left behind
            off = self._cycle_offset
            burst = self._queue.popleft()
            record = burst.record
            record.first_beat_cycle = port.get("tb_r_first", ch) - off
            record.last_beat_cycle = now - 1
            if self.keep_records:
                log = port.get("tb_r_log", ch)
                record.beat_cycles = [((log >> (32 * k)) & 0xFFFFFFFF) - off
                                      for k in range(record.beats - 1, -1, -1)]
            for listener in self.listeners:
                listener(record)

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
            burst.record.first_beat_cycle = burst.record.beat_cycles[0]
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
