"""A DRAM timing model running in simulated time, for bus responders.

`DramTarget` owns a memory model with the incremental API of
`spatten_dv.models.dram.memory_system.MemorySystem` (`now`, `try_send`, `advance_to`,
`pop_completions`, `next_event_cycle`; the fixed-latency ideal model has the same API) and maps
its controller cycles onto the simulation clock one to one: controller cycle c is the clock
cycle that starts at the c-th rising edge after `start()`. Responders `submit()` transaction
reads and wait on the returned Event; the target's one coroutine sleeps until the model's next
event, or is restarted by a submission that arrives earlier, so an idle memory costs no
wake-ups. Pin access stays in the
responders: the target touches no signal except the clock it is started on.
"""

from __future__ import annotations

from collections import deque

import cocotb
from cocotb.simtime import get_sim_time
from cocotb.triggers import Event, RisingEdge, Timer

from spatten_dv.models.dram.device import INF


class DramTarget:
    def __init__(self, model, clock_period_ps: int, keep_completed: bool = True):
        self.model = model
        self.keep_completed = keep_completed  # off for long runs: one tuple per read
        self.period_ps = int(clock_period_ps)
        # (arrival cycle, address, Event) handed over but not yet accepted by the controller
        self._pending: deque[tuple[int, int, Event]] = deque()
        self._idle = Event()  # never set: what the coroutine waits on with nothing to do
        self._wake_cycle = INF  # the cycle the coroutine wakes in next
        self._poll_due = False  # a polled submission waits for poll() on the next edge
        self._t0_ps: int | None = None
        self._clk = None
        self._task = None
        self.reads = 0
        self.completed: list[tuple[int, int, int]] = []  # (addr, arrive, depart) per read
        # called once after each cycle's completions were set (the HDL R playout writes its
        # release count once per cycle, not once per transaction)
        self.after_completions: list = []

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

    def submit(self, addr: int, done=None, polled: bool = False):
        """Read one transaction at `addr`; `done` (a new Event by default; anything with a
        `set()` method) is set in the cycle its data returns, and returned.

        A request handed over during cycle c (an AR handshake at the edge that ends c) reaches
        the controller in cycle c + 1. `polled`: the caller calls `poll()` on the edge that
        starts c + 1 (the responders are awake there anyway), so the coroutine need not be
        restarted to take the request.
        """
        if done is None:
            done = Event()
        arrival = self.cycle() + 1
        self._pending.append((arrival, addr, done))
        self.reads += 1
        if arrival < self._wake_cycle and self._task is not None:
            if polled:
                self._poll_due = True
            else:
                # The coroutine sleeps past the arrival: restart it to wake then. Cheaper than
                # racing every sleep against a submission Event (First: two tasks per wake-up).
                self._restart(arrival)
        return done

    def poll(self) -> None:
        """On a rising edge: take the requests that arrive in this cycle (see `submit`)."""
        if not self._poll_due:
            return
        self._poll_due = False
        now = self.cycle()
        if self._wake_cycle <= now:
            return  # the coroutine runs on this edge itself
        nxt = self._step(now)
        if nxt < self._wake_cycle:
            self._restart(nxt)

    def _restart(self, cycle: int) -> None:
        self._task.cancel()
        self._wake_cycle = cycle
        self._task = cocotb.start_soon(self._run(cycle))

    async def _sleep_until(self, cycle: int) -> None:
        """Return on the rising edge that starts `cycle` (at once if it has started)."""
        # Sleep to half a cycle before it, then wake on its rising edge, where every other
        # testbench coroutine drives its pins too.
        delay = (self._t0_ps + cycle * self.period_ps - self.period_ps // 2
                 - int(get_sim_time("ps")))
        await Timer(max(delay, 1), unit="ps")
        await RisingEdge(self._clk)

    async def _run(self, first_wake: int | None = None) -> None:
        if first_wake is not None:
            if first_wake == self.cycle() + 1:
                await RisingEdge(self._clk)  # the usual restart: an arrival in the next cycle
            else:
                await self._sleep_until(first_wake)
        while True:
            nxt = self._step(self.cycle())
            self._wake_cycle = nxt
            if nxt >= INF:
                await self._idle.wait()  # never set: a submission restarts the coroutine
            elif nxt == self.cycle() + 1:
                await RisingEdge(self._clk)  # on an edge now: the next one starts `nxt`
            else:
                await self._sleep_until(nxt)

    def _step(self, now: int) -> int:
        """Run the model to cycle `now` (on its rising edge); the cycle of its next event."""
        # Processing happens only on a rising edge, never in a read-only phase, so the
        # Events it sets let responders drive their pins at once, like any other driver.
        model = self.model
        if now > model.now:
            model.advance_to(now)
        while self._pending and self._pending[0][0] <= now:
            _, addr, done = self._pending[0]
            if model.try_send(addr, tag=done) is None:
                break  # queue full: offer again next cycle, in order
            self._pending.popleft()
        completions = model.pop_completions()
        for req in completions:
            if self.keep_completed:
                self.completed.append((req.addr, req.arrive, req.depart))
            req.tag.set()
        if completions:
            for hook in self.after_completions:
                hook()
        nxt = model.next_event_cycle()
        if self._pending:
            nxt = min(nxt, max(now + 1, self._pending[0][0]))
        return nxt
