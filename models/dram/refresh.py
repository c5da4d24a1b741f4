"""Refresh managers: they put refresh commands into the controller's priority buffer."""

from __future__ import annotations

from .device import INF


class NoRefresh:
    name = "NoRefresh"
    next_event = INF

    def __init__(self, controller):
        pass

    def tick(self, clk: int) -> None:
        pass


class AllBankRefresh:
    """One REFab per refresh node (rank; pseudo-channel on HBM2) at every multiple of nREFI.

    Refreshes are not staggered and never postponed: at clk == k * nREFI every node gets its
    REFab queued at once, and the controller serves the priority buffer before any new request.
    """

    name = "AllBank"

    def __init__(self, controller):
        device = controller.device
        self.controller = controller
        self.interval = device.dram.timings["nREFI"]
        self.next_event = self.interval
        self.command = device.REFA
        level = device.standard.levels.index(device.standard.refresh_level)
        self.addresses = []
        for node in range(device.level_nodes[level]):
            # (channel, ids down to `level`, then -1 for every level below it)
            ids, index = [], node
            for lv in range(level, 0, -1):
                ids.append(index % device.sizes[lv])
                index //= device.sizes[lv]
            self.addresses.append((0, *reversed(ids)) + (-1,) * (device.bank_level - level))

    def tick(self, clk: int) -> None:
        if clk == self.next_event:
            self.next_event += self.interval
            for address in self.addresses:
                if not self.controller.send_maintenance(self.command, address):
                    raise RuntimeError("refresh request dropped: the priority buffer is full")
            self.controller.stats.refreshes_queued += len(self.addresses)


REFRESH_MANAGERS = {r.name: r for r in (NoRefresh, AllBankRefresh)}


def make_refresh(name: str, controller):
    return REFRESH_MANAGERS[name](controller)
