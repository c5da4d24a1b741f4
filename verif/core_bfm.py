"""Pin access to spatten_core's descriptor and result streams (the only code touching them).

The BFM is transaction-level and event-driven: no coroutine wakes on every clock while an
interface is idle. `send()` drives one descriptor and returns once the core has taken it
(sleeping on `desc_ready` while the core is busy); the result side sleeps on `res_valid`, holds
`res_ready` low for a random number of cycles (back-pressure knob), takes the result and puts it
on `results`. The descriptor that was actually taken is read back from the pins at the
handshake and put on `descriptors`, so monitors publish what the core saw, not what a sequence
meant to send. Handshakes are sampled in ReadOnly before the edge and driven after it.
"""

from __future__ import annotations

import random

import cocotb
from cocotb.clock import Clock
from cocotb.queue import Queue
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, Event, ReadOnly, RisingEdge, with_timeout

from spatten_dv.models.descriptor import result_fields, unpack_fields
from spatten_dv.models.params import DEFAULT_PARAMS, OUT_BITS, CoreParams


class CoreBfm:
    def __init__(self, dut, params: CoreParams = DEFAULT_PARAMS, period_ps: int = 1000,
                 res_ready_prob: float = 1.0, seed: int = 0, timeout_ns: int = 2_000_000):
        self.dut = dut
        self.params = params
        self.period_ps = int(period_ps)
        self.res_ready_prob = res_ready_prob
        self.rng = random.Random(seed * 104729 + 17)
        self.timeout_ns = timeout_ns
        self.layout = result_fields(params)
        self.descriptors: Queue = Queue()  # (cycle, packed int) per accepted descriptor
        self.results: Queue = Queue()  # (cycle, fields dict, wait cycles) per result
        self.result_taken = Event()  # set each time a result handshake completes
        self.results_taken = 0
        self._t0_ps = 0
        self._tasks = []

    # ------------------------------------------------------------------ clock, reset
    async def start(self) -> None:
        """Start the clock, hold reset 3 cycles, release it, start the result side."""
        dut = self.dut
        # The clock toggles in the GPI layer (C++), not in a Python coroutine per edge.
        self.clock = Clock(dut.clk, self.period_ps, unit="ps", impl="gpi")
        self.clock.start()
        dut.rst_n.value = 0
        dut.desc_valid.value = 0
        dut.desc_data.value = 0
        dut.res_ready.value = 0
        for name in ("dbg_req", "dbg_heads", "dbg_n", "dbg_ready"):
            if hasattr(dut, name):  # the state readback port (verif/state_readback.py)
                getattr(dut, name).value = 0
        await ClockCycles(dut.clk, 3)
        dut.rst_n.value = 1
        await RisingEdge(dut.clk)
        self._t0_ps = int(get_sim_time("ps"))
        self._tasks.append(cocotb.start_soon(self._result_loop()))

    def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        self._tasks = []

    def cycle(self) -> int:
        return (int(get_sim_time("ps")) - self._t0_ps) // self.period_ps

    # ------------------------------------------------------------------ descriptor side
    async def send(self, packed: int) -> None:
        """Drive one descriptor until the core takes it (timeout: the core never hangs)."""
        dut = self.dut
        dut.desc_data.value = packed
        dut.desc_valid.value = 1
        await with_timeout(self._wait_taken(), self.timeout_ns, "ns")
        dut.desc_valid.value = 0

    async def _wait_taken(self) -> None:
        dut = self.dut
        while True:
            await ReadOnly()
            if int(dut.desc_ready.value):
                seen = int(dut.desc_data.value)
                cycle = self.cycle()
                await RisingEdge(dut.clk)
                self.descriptors.put_nowait((cycle, seen))
                return
            await RisingEdge(dut.desc_ready)

    # ------------------------------------------------------------------ result side
    async def _result_loop(self) -> None:
        dut = self.dut
        half, full = 1 << (OUT_BITS - 1), 1 << OUT_BITS
        while True:
            await ReadOnly()
            if int(dut.res_valid.value):
                await RisingEdge(dut.clk)  # already valid: leave the read-only phase
            else:
                await RisingEdge(dut.res_valid)  # sleep until a result is offered
            wait = 0
            while self.res_ready_prob < 1.0 and self.rng.random() >= self.res_ready_prob:
                wait += 1
                await RisingEdge(dut.clk)
            dut.res_ready.value = 1
            await ReadOnly()
            got = unpack_fields(int(dut.res_data.value), self.layout)
            cycle = self.cycle()
            await RisingEdge(dut.clk)
            dut.res_ready.value = 0
            words = [(got["out"] >> (OUT_BITS * d)) & (full - 1)
                     for d in range(self.params.head_dim)]
            got["out"] = [w - full if w >= half else w for w in words]
            self.results_taken += 1
            self.results.put_nowait((cycle, got, wait))
            self.result_taken.set()

    async def wait_results(self, count: int) -> None:
        """Wait until `count` results have been taken in all (with the job timeout)."""
        async def until():
            while self.results_taken < count:
                self.result_taken.clear()
                await self.result_taken.wait()

        await with_timeout(until(), self.timeout_ns, "ns")
