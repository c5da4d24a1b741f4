"""One channel's memory controller: queues, the per-cycle scheduling step, and its clock.

The scheduling step reproduces Ramulator 2.1's GenericDDR controller (one command per cycle)
and HBM12 controller (a column-bus slot, then a row-bus slot, per cycle):

1. The clock advances; the refresh manager may queue REFab into the priority buffer; the row
   policy may queue a PREpb (ClosedCAP).
2. Candidates, first match wins:
   a. the active buffer (requests whose ACT has issued): the scheduler's pick, if legal now;
   b. the head of the priority buffer, if its next command is legal now and does not close a
      bank an active request is waiting on;
   c. only when the priority buffer is empty: the read or write queue (write mode is entered
      above the high watermark or when no read is queued, and left below the low watermark
      when a read is queued), without requests whose next command would close such a bank.
3. The row policy may turn RD/WR into RDA/WRA; the request's row-buffer outcome is counted at
   its first command; the command issues. Its last command retires a request (a read departs
   nCL + nBL later); an ACT moves it to the active buffer.

Event-driven: a cycle in which nothing can issue only changes the queue-length statistics, so
after a cycle with no command the controller sleeps until the earliest cycle at which a queued
command, a refresh or a row-policy precharge can become legal (`next_tick`). Sleeping is
exact: nothing observable happens in the skipped cycles.
"""

from __future__ import annotations

from .config import SystemConfig
from .device import INF, Device
from .refresh import make_refresh
from .request import MAINTENANCE, READ, WRITE, Request
from .row_policy import make_row_policy
from .scheduler import make_scheduler
from .standard import Bus
from .stats import ChannelStats


class Controller:
    def __init__(self, config: SystemConfig, channel_id: int = 0, log_commands: bool = False,
                 skip_idle_cycles: bool = True):
        cc = config.controller
        self.config = config
        self.channel_id = channel_id
        self.device = device = Device(config.dram)
        self.read_latency = config.dram.read_latency
        self.clk = 0  # the last controller cycle processed
        self.next_tick = 1  # the earliest cycle at which anything can happen
        # False: process every cycle, as Ramulator does (tests compare the two modes).
        self.skip_idle_cycles = skip_idle_cycles

        self.read_queue: list[Request] = []
        self.write_queue: list[Request] = []
        self.active: list[Request] = []
        self.priority: list[Request] = []
        self.read_capacity = cc.read_buffer_size
        self.write_capacity = cc.write_buffer_size
        self.priority_capacity = cc.priority_buffer_size
        self.active_capacity = device.banks
        self.active_per_bank = [0] * device.banks
        self.buffered_write_addrs: set[int] = set()
        self.write_mode = False
        self.wr_high = cc.wr_high_watermark * cc.write_buffer_size
        self.wr_low = cc.wr_low_watermark * cc.write_buffer_size

        self.scheduler = make_scheduler(cc.scheduler)
        self.scheduler.bind(self)
        self.stats = ChannelStats()
        self.refresh = make_refresh(cc.refresh, self)
        self.row_policy = make_row_policy(cc.row_policy, self)
        self.command_counts = [0] * device.ncmd
        self.retired: list[Request] = []  # completed requests, in retirement order
        self.command_log: list[tuple[int, str, tuple, int]] | None = [] if log_commands else None

        std = config.dram.standard
        if cc.controller == "HBM12":
            if not std.dual_command_bus:
                raise ValueError(f"the HBM12 controller needs a dual-bus standard, not {std.name}")
            self.column_slot = [c.bus is Bus.COLUMN for c in std.commands]
            self.row_slot = [c.bus is Bus.ROW for c in std.commands]
            self._schedule = self._schedule_dual_bus
        else:
            self._schedule = self._schedule_single_bus
        self.read_cmd = std.command_index(std.request_commands["read"])
        self.write_cmd = std.command_index(std.request_commands["write"])

    # ---- requests in ------------------------------------------------------------------------

    def make_request(self, kind: int, addr: int, fields, tag=None) -> Request:
        """A request for DRAM coordinates `fields` = [level 1 id, ..., bank, row, column]."""
        device = self.device
        bank_level = device.bank_level
        path = (0, *fields[:bank_level])  # the device models one channel: its node is 0
        bank = device.flat_bank(path)
        return Request(kind, addr, self.channel_id, path, bank, fields[bank_level],
                       fields[bank_level + 1], device.bank_offsets[bank],
                       self.read_cmd if kind == READ else self.write_cmd, tag)

    def send(self, req: Request, now: int) -> bool:
        """Offer `req` at controller cycle `now` (before tick now+1); False when its queue is
        full. The earliest command for an accepted request can issue at now+1."""
        if self.clk < now:
            self._sleep_until(now)
        stats = self.stats
        if req.kind == READ:
            if self.buffered_write_addrs and req.addr in self.buffered_write_addrs:
                # Forwarded from a queued write: data returns on the next cycle.
                req.arrive = now
                req.depart = now + 1
                stats.reads += 1
                stats.reads_forwarded += 1
                stats.read_latency_sum += 1
                stats.read_latencies[1] += 1
                self.retired.append(req)
                return True
            if len(self.read_queue) >= self.read_capacity:
                return False
            req.arrive = now
            self.read_queue.append(req)
            stats.reads += 1
        else:
            if req.addr in self.buffered_write_addrs:
                req.arrive = req.depart = now  # absorbed by the queued write to that address
                stats.writes += 1
                stats.writes_coalesced += 1
                self.retired.append(req)
                return True
            if len(self.write_queue) >= self.write_capacity:
                return False
            req.arrive = now
            self.write_queue.append(req)
            self.buffered_write_addrs.add(req.addr)
            stats.writes += 1
        self.next_tick = now + 1
        return True

    def send_maintenance(self, command: int, address: tuple[int, ...]) -> bool:
        """Queue a controller-generated command (refresh, precharge) in the priority buffer."""
        if len(self.priority) >= self.priority_capacity:
            return False
        device = self.device
        bank = -1 if device.all_banks[command] else device.flat_bank(address)
        req = Request(MAINTENANCE, -1, self.channel_id, address, bank, -1, -1,
                      device.bank_offsets[bank] if bank >= 0 else (), command)
        self.priority.append(req)
        return True

    @property
    def idle(self) -> bool:
        return not (self.read_queue or self.write_queue or self.active or self.priority)

    # ---- clock ------------------------------------------------------------------------------

    def _sleep_until(self, clk: int) -> None:
        """Account cycles self.clk+1 .. clk, in which nothing can issue (queue lengths only)."""
        n = clk - self.clk
        if n <= 0:
            return
        stats = self.stats
        stats.read_queue_sum += len(self.read_queue) * n
        stats.write_queue_sum += len(self.write_queue) * n
        stats.priority_queue_sum += len(self.priority) * n
        stats.ticks += n
        self.clk = clk

    def advance_to(self, clk: int) -> None:
        """Process every cycle up to and including `clk` (sleeping through idle stretches)."""
        while self.next_tick <= clk:
            self.tick(self.next_tick)
        self._sleep_until(clk)

    def tick(self, clk: int) -> None:
        """Process controller cycle `clk` (> self.clk; cycles in between must be idle)."""
        if clk - 1 > self.clk:
            self._sleep_until(clk - 1)
        self.clk = clk
        stats = self.stats
        stats.read_queue_sum += len(self.read_queue)
        stats.write_queue_sum += len(self.write_queue)
        stats.priority_queue_sum += len(self.priority)
        stats.ticks += 1

        refresh = self.refresh
        if clk == refresh.next_event:
            refresh.tick(clk)
        self.row_policy.pre_schedule(clk)

        wake = self._schedule(clk)
        if wake <= clk or not self.skip_idle_cycles:
            self.next_tick = clk + 1  # a command issued: anything may be possible next cycle
        else:
            wake = min(wake, refresh.next_event, self.row_policy.next_event())
            self.next_tick = wake if wake > clk else clk + 1

    def _set_write_mode(self) -> None:
        if not self.write_mode:
            if len(self.write_queue) > self.wr_high or not self.read_queue:
                self.write_mode = True
        elif len(self.write_queue) < self.wr_low and self.read_queue:
            self.write_mode = False

    # ---- scheduling -------------------------------------------------------------------------

    def _schedule_single_bus(self, clk: int) -> int:
        """One command slot. Returns clk if a command issued, else the wake-up bound."""
        wake = INF
        if self.active:
            req, wake = self.scheduler.pick_active(self.active, clk, None)
            if req is not None:
                self._issue(req, self.active, clk)
                return clk
        if self.priority:
            req, w = self._pick_priority(clk, None)
            buffer = self.priority
        else:
            self._set_write_mode()
            buffer = self.write_queue if self.write_mode else self.read_queue
            req, w = self.scheduler.pick_queue(buffer, clk, None)
        if req is None:
            return min(wake, w)
        self._issue(req, buffer, clk)
        return clk

    def _schedule_dual_bus(self, clk: int) -> int:
        """A column-bus slot, then a row-bus slot, in the same cycle (HBM12)."""
        wake = INF
        issued = False
        column_slot, row_slot = self.column_slot, self.row_slot
        for slot in (column_slot, row_slot):
            req = None
            buffer = self.active
            if slot is column_slot and self.active:
                req, w = self.scheduler.pick_active(self.active, clk, slot)
                wake = min(wake, w)
            if req is None:
                if self.priority:
                    req, w = self._pick_priority(clk, slot)
                    buffer = self.priority
                else:
                    self._set_write_mode()
                    buffer = self.write_queue if self.write_mode else self.read_queue
                    req, w = self.scheduler.pick_queue(buffer, clk, slot)
                wake = min(wake, w)
            if req is not None:
                self._issue(req, buffer, clk, slot)
                issued = True
        return clk if issued else wake

    def _pick_priority(self, clk: int, slot):
        head = self.priority[0]
        device = self.device
        cmd = head.cmd = device.prerequisite(head.final_cmd, head.path, head.row)
        ready = device.ready_at(cmd, head.path)
        if ready > clk:
            return None, ready
        if self._would_close_active(cmd, head):
            return None, INF  # re-examined when the active request issues
        if slot is not None and not slot[cmd]:
            return None, INF  # the other slot takes it
        return head, INF

    def _would_close_active(self, cmd: int, req: Request) -> bool:
        device = self.device
        if not device.closing[cmd] or not self.active:
            return False
        if not device.all_banks[cmd]:
            return self.active_per_bank[req.bank] > 0
        targets = device.target_banks(cmd, req.path)
        return any(self.active_per_bank[b] for b in targets)

    def _issue(self, req: Request, buffer: list, clk: int, slot=None) -> None:
        device = self.device
        policy = self.row_policy
        if policy.upgrades:
            original = req.cmd
            policy.try_upgrade(req, clk)
            if slot is not None and not slot[req.cmd]:
                req.cmd = original
        cmd = req.cmd
        if not req.stats_counted:
            req.stats_counted = True
            if req.kind != MAINTENANCE:
                self._count_row_outcome(req)
        device.issue(cmd, req.path, req.bank, req.row, clk)
        self.command_counts[cmd] += 1
        if self.command_log is not None:
            self.command_log.append((clk, device.commands[cmd].name, req.path, req.row))
        policy.on_issue(req)
        if cmd == req.final_cmd:
            self._retire(req, buffer, clk)
        elif device.opening[cmd]:
            self._promote(req, buffer)

    def _count_row_outcome(self, req: Request) -> None:
        open_row = self.device.open_row[req.bank]
        stats = self.stats
        if req.kind == READ:
            if open_row < 0:
                stats.read_row_misses += 1
            elif open_row == req.row:
                stats.read_row_hits += 1
            else:
                stats.read_row_conflicts += 1
        else:
            if open_row < 0:
                stats.write_row_misses += 1
            elif open_row == req.row:
                stats.write_row_hits += 1
            else:
                stats.write_row_conflicts += 1

    def _retire(self, req: Request, buffer: list, clk: int) -> None:
        if buffer is self.active:
            self.active_per_bank[req.bank] -= 1
        elif buffer is self.write_queue:
            self.buffered_write_addrs.discard(req.addr)
        stats = self.stats
        if req.kind == READ:
            req.depart = depart = clk + self.read_latency
            latency = depart - req.arrive
            stats.reads_served += 1
            stats.read_latency_sum += latency
            stats.read_latencies[latency] += 1
            self.retired.append(req)
        elif req.kind == WRITE:
            req.depart = clk
            stats.writes_served += 1
            self.retired.append(req)
        else:
            req.depart = clk
            stats.maintenance_served += 1
        buffer.remove(req)

    def _promote(self, req: Request, buffer: list) -> None:
        if len(self.active) >= self.active_capacity:
            return  # Ramulator leaves the request where it is
        self.active.append(req)
        self.active_per_bank[req.bank] += 1
        if buffer is self.write_queue:
            self.buffered_write_addrs.discard(req.addr)
        buffer.remove(req)

    def finalize(self, clk: int) -> ChannelStats:
        """Bring the statistics up to cycle `clk` (the end of the run) and return them."""
        self.advance_to(clk)
        names = [c.name for c in self.device.commands]
        self.stats.commands.clear()
        for i, n in enumerate(self.command_counts):
            if n:
                self.stats.commands[names[i]] = n
        return self.stats
