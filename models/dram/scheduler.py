"""Request schedulers: which queued request gets the command slot this cycle.

A scheduler looks at one buffer. For every request it derives the next command from the bank
state (bank closed -> ACT, open to another row -> PRE, open to the request's row -> its RD/WR)
and whether that command meets every timing rule now. Requests whose command would close a bank
that an activated request is still waiting on are left out (Ramulator's would-close-active
filter); on a dual command bus only the commands of the slot's bus are considered.

* FR-FCFS (Ramulator's FRFCFS): the oldest request whose command is legal now.
* FCFS: the oldest request; nothing issues until its command is legal.

Both return (request, wake): the chosen request or None, and when None a lower bound on the
first cycle at which one of the considered requests could become legal (the controller sleeps
until then). The bound comes from `Request.ready_lb`, a cached ready cycle that is exact when
computed and can only grow later (timing rules only ever push ready cycles out), so a request
whose cached bound is still in the future needs no work at all.
"""

from __future__ import annotations

from .device import INF


class Scheduler:
    name = "base"

    def bind(self, controller) -> None:
        device = controller.device
        self.ready = device.ready
        self.open_row = device.open_row
        self.bank_version = device.bank_version
        self.closing = device.closing
        self.active_per_bank = controller.active_per_bank
        self.ACT = device.ACT
        self.PRE = device.PRE

    def _update(self, req, clk: int) -> None:
        """Refresh req.cmd and req.ready_lb (exact) if they may be stale at `clk`."""
        bank = req.bank
        version = self.bank_version[bank]
        if req.state_version != version:
            open_row = self.open_row[bank]
            if open_row == req.row:
                cmd = req.final_cmd
            elif open_row < 0:
                cmd = self.ACT
            else:
                cmd = self.PRE
            req.cmd = cmd
            req.state_version = version
        elif req.ready_lb > clk:
            return
        else:
            cmd = req.cmd
        ready = self.ready
        o0, o1, o2, o3 = req.offsets
        req.ready_lb = max(ready[o0 + cmd], ready[o1 + cmd], ready[o2 + cmd], ready[o3 + cmd])

    def pick_queue(self, buffer: list, clk: int, allowed):
        """Pick from a read/write queue; requests there are in arrival order."""
        raise NotImplementedError

    def pick_active(self, buffer: list, clk: int, allowed):
        """Pick from the activated-request buffer (not in arrival order)."""
        raise NotImplementedError


class FRFCFS(Scheduler):
    name = "FRFCFS"

    def pick_queue(self, buffer, clk, allowed):
        # Inlined `_update`: this loop is the simulator's hot path. The common case is a
        # request whose bank state is unchanged and whose cached bound is still ahead.
        ready = self.ready
        open_row = self.open_row
        bank_version = self.bank_version
        closing = self.closing
        active_per_bank = self.active_per_bank
        wake = INF
        for req in buffer:
            lb = req.ready_lb
            bank = req.bank
            version = bank_version[bank]
            if req.state_version != version:
                row = open_row[bank]
                if row == req.row:
                    cmd = req.final_cmd
                elif row < 0:
                    cmd = self.ACT
                else:
                    cmd = self.PRE
                req.cmd = cmd
                req.state_version = version
            elif lb > clk:
                # Filters are ignored for the wake-up bound: a bound may be early, never late.
                if lb < wake:
                    wake = lb
                continue
            else:
                cmd = req.cmd
            o0, o1, o2, o3 = req.offsets
            lb = req.ready_lb = max(ready[o0 + cmd], ready[o1 + cmd], ready[o2 + cmd],
                                    ready[o3 + cmd])
            if lb > clk:
                if lb < wake:
                    wake = lb
            elif (allowed is None or allowed[cmd]) and not (closing[cmd]
                                                             and active_per_bank[bank]):
                return req, wake
        return None, wake

    def pick_active(self, buffer, clk, allowed):
        # No would-close-active filter here: Ramulator applies it to the priority and
        # read/write buffers only.
        best = None
        wake = INF
        for req in buffer:
            self._update(req, clk)
            if allowed is not None and not allowed[req.cmd]:
                continue
            if req.ready_lb <= clk:
                if best is None or req.arrive < best.arrive:
                    best = req
            elif req.ready_lb < wake:
                wake = req.ready_lb
        return best, wake


class FCFS(Scheduler):
    """Strict arrival order: the oldest request holds the slot until its command is legal."""

    name = "FCFS"

    def _oldest(self, buffer, clk, allowed, by_arrival: bool):
        # The active buffer is not in arrival order and has no would-close-active filter.
        closing = self.closing
        active_per_bank = self.active_per_bank
        oldest = None
        for req in buffer:
            self._update(req, clk)
            cmd = req.cmd
            if allowed is not None and not allowed[cmd]:
                continue
            if not by_arrival and closing[cmd] and active_per_bank[req.bank]:
                continue
            if oldest is None or (by_arrival and req.arrive < oldest.arrive):
                oldest = req
                if not by_arrival:
                    break
        if oldest is None:
            return None, INF
        if oldest.ready_lb <= clk:
            return oldest, INF
        return None, oldest.ready_lb

    def pick_queue(self, buffer, clk, allowed):
        return self._oldest(buffer, clk, allowed, by_arrival=False)

    def pick_active(self, buffer, clk, allowed):
        return self._oldest(buffer, clk, allowed, by_arrival=True)


SCHEDULERS = {s.name: s for s in (FRFCFS, FCFS)}


def make_scheduler(name: str) -> Scheduler:
    return SCHEDULERS[name]()
