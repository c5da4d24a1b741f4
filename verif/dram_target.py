"""A DRAM timing model running in simulated time, for bus responders.

`DramTarget` owns a memory model with the incremental API of
`spatten_dv.models.dram.memory_system.MemorySystem` (`now`, `try_send`, `advance_to`,
`pop_completions`, `next_event_cycle`; the fixed-latency ideal model has the same API) and maps
its controller cycles onto the simulation clock one to one: controller cycle c is the clock
cycle that starts at the c-th rising edge after `start()`. Responders `submit()` transaction
reads and wait on the returned Event; the target's one coroutine sleeps until the model's next
event or a new submission, so an idle memory costs no wake-ups. Pin access stays in the
responders: the target touches no signal except the clock it is started on.
"""

from __future__ import annotations

from collections import deque

import cocotb
from cocotb.simtime import get_sim_time
from cocotb.triggers import Event, First, RisingEdge, Timer

from spatten_dv.models.dram.device import INF


class DramTarget:
    def __init__(self, model, clock_period_ps: int):
        self.model = model
        self.period_ps = int(clock_period_ps)
        # (arrival cycle, address, Event) handed over but not yet accepted by the controller
        self._pending: deque[tuple[int, int, Event]] = deque()
        self._wake = Event()
        self._t0_ps: int | None = None
        self._clk = None
        self._task = None
        self.reads = 0
        self.completed: list[tuple[int, int, int]] = []  # (addr, arrive, depart) per read

    async def start(self, clk) -> None:
        """Align cycle 0 with the next rising edge of `clk` and start the model's clock."""
        await RisingEdge(clk)
        self._clk = clk
        self._t0_ps = int(get_sim_time("ps"))
        self._task = cocotb.start_soon(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def cycle(self) -> int:
        """The controller cycle the simulation is in now."""
        return (int(get_sim_time("ps")) - self._t0_ps) // self.period_ps

    def submit(self, addr: int) -> Event:
        """Read one transaction at `addr`; the Event is set in the cycle its data returns.

        A request handed over during cycle c (an AR handshake at the edge that ends c) reaches
        the controller in cycle c + 1.
        """
        done = Event()
        self._pending.append((self.cycle() + 1, addr, done))
        self.reads += 1
        self._wake.set()
        return done

    async def _run(self) -> None:
        model = self.model
        while True:
            # Processing happens only on a rising edge, never in a read-only phase, so the
            # Events it sets let responders drive their pins at once, like any other driver.
            now = self.cycle()
            if now > model.now:
                model.advance_to(now)
            while self._pending and self._pending[0][0] <= now:
                _, addr, done = self._pending[0]
                if model.try_send(addr, tag=done) is None:
                    break  # queue full: offer again next cycle, in order
                self._pending.popleft()
            for req in model.pop_completions():
                self.completed.append((req.addr, req.arrive, req.depart))
                req.tag.set()
            nxt = model.next_event_cycle()
            if self._pending:
                nxt = min(nxt, max(now + 1, self._pending[0][0]))
            while True:
                self._wake.clear()
                if nxt >= INF:
                    await self._wake.wait()
                else:
                    # Sleep to half a cycle before cycle `nxt`, then wake on its rising edge,
                    # where every other testbench coroutine drives its pins too.
                    delay = (self._t0_ps + nxt * self.period_ps - self.period_ps // 2
                             - int(get_sim_time("ps")))
                    timer = Timer(max(delay, 1), unit="ps")
                    if await First(timer, self._wake.wait()) is timer:
                        await RisingEdge(self._clk)
                        break
                # A submission arrived (possibly during a read-only phase): reschedule only.
                if self._pending:
                    nxt = min(nxt, self._pending[-1][0])
