"""Row-buffer policies: when to close a row that nobody asked to close."""

from __future__ import annotations

from .device import INF


class OpenRowPolicy:
    """Rows stay open until a request to another row (or a refresh) closes them."""

    name = "Open"
    upgrades = False

    def __init__(self, controller):
        pass

    def pre_schedule(self, clk: int) -> None:
        pass

    def next_event(self) -> int:
        return INF

    def try_upgrade(self, req, clk: int) -> None:
        pass

    def on_issue(self, req) -> None:
        pass


class ClosedCapPolicy:
    """Ramulator's ClosedCAP: close a row once it has served `cap` column accesses.

    After the cap, a RD/WR to that bank is turned into RDA/WRA when the auto-precharge form is
    legal at that cycle. Otherwise, as soon as a PREpb to the bank is legal, one PREpb is queued
    in the priority buffer (once per bank until the bank closes).
    """

    name = "ClosedCAP"
    upgrades = True

    def __init__(self, controller):
        device = controller.device
        self.controller = controller
        self.device = device
        self.cap = controller.config.controller.row_policy_cap
        self.accesses = [0] * device.banks
        self.precharge_queued = [False] * device.banks
        self.waiting: set[int] = set()  # banks at the cap with no PREpb queued yet
        self.upgrade_to = {device.RD: device.RDA, device.WR: device.WRA}
        if device.RDA < 0 or device.WRA < 0:
            self.upgrade_to = {}
        self.addresses = [device.bank_address(b) for b in range(device.banks)]

    def pre_schedule(self, clk: int) -> None:
        if not self.waiting:
            return
        device = self.device
        for bank in sorted(self.waiting):  # Ramulator scans banks in flat order
            if device.bank_ready_at(device.PRE, bank) <= clk:
                if self.controller.send_maintenance(device.PRE, self.addresses[bank]):
                    self.precharge_queued[bank] = True
                    self.waiting.discard(bank)

    def next_event(self) -> int:
        if not self.waiting:
            return INF
        device = self.device
        return min(device.bank_ready_at(device.PRE, b) for b in self.waiting)

    def try_upgrade(self, req, clk: int) -> None:
        if req.bank < 0 or self.accesses[req.bank] < self.cap:
            return
        upgraded = self.upgrade_to.get(req.cmd)
        if upgraded is not None and self.device.bank_ready_at(upgraded, req.bank) <= clk:
            req.cmd = upgraded
            req.final_cmd = upgraded

    def on_issue(self, req) -> None:
        device = self.device
        cmd = req.cmd
        if device.closing[cmd]:
            for bank in device.target_banks(cmd, req.path):
                self.accesses[bank] = 0
                self.precharge_queued[bank] = False
                self.waiting.discard(bank)
        elif device.accessing[cmd]:
            bank = req.bank
            self.accesses[bank] += 1
            if self.accesses[bank] >= self.cap and not self.precharge_queued[bank]:
                self.waiting.add(bank)


ROW_POLICIES = {p.name: p for p in (OpenRowPolicy, ClosedCapPolicy)}


def make_row_policy(name: str, controller):
    return ROW_POLICIES[name](controller)
