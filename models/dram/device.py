"""Timing and bank state of one channel's DRAM, driven by a resolved rule table.

Like Ramulator 2, each node of the hierarchy (channel, rank or pseudo-channel, bank group, bank)
keeps, per command, the first cycle at which that command may issue there. Issuing a command
raises those cycles along the command's path: at every target node by the rules whose preceding
command it is, and at the other children of a target node by the sibling rules. A command is
legal at cycle t when t has reached the ready cycle of every node on its path (every node below
the path too, when the address leaves the lower levels open, as for REFab).

The ready cycles of all nodes live in one flat list (`ready`), one block of `ncmd` entries per
node, so the controller can check a request with four list reads. The per-command update lists
are compiled once per (command, address) and cached.
"""

from __future__ import annotations

from .config import DramSpec
from .standard import Role

INF = 1 << 62  # "never" for ready cycles and event times


class Device:
    def __init__(self, dram: DramSpec):
        std = dram.standard
        self.dram = dram
        self.standard = std
        self.ncmd = ncmd = len(std.commands)
        self.bank_level = bank_level = std.bank_level
        self.row_level = std.row_level
        self.sizes = sizes = tuple(dram.level_sizes[:bank_level + 1])

        # Nodes are numbered level by level; node i of level l has children i*size[l+1] + k.
        self.level_nodes = []
        self.level_first = []
        count, first = 1, 0
        for level in range(bank_level + 1):
            if level:
                count *= sizes[level]
            self.level_first.append(first)
            self.level_nodes.append(count)
            first += count
        self.node_count = first
        self.banks = self.level_nodes[bank_level]
        self.ready = [-1] * (self.node_count * ncmd)

        # Bank state: the open row of each bank (-1: closed); the version counts state changes
        # so that a request can tell whether its cached next command is still valid.
        self.open_row = [-1] * self.banks
        self.bank_version = [0] * self.banks

        self.commands = std.commands
        self.closing = [c.closes for c in std.commands]
        self.opening = [c.opens for c in std.commands]
        self.accessing = [c.accesses for c in std.commands]
        self.all_banks = [c.all_banks for c in std.commands]
        self.role = [c.role for c in std.commands]
        self.ACT = std.role_index(Role.ACTIVATE)
        self.PRE = std.role_index(Role.PRECHARGE)
        self.PREA = std.role_index(Role.PRECHARGE_ALL)
        self.REFA = std.role_index(Role.REFRESH_ALL)
        self.RD = std.role_index(Role.READ)
        self.WR = std.role_index(Role.WRITE)
        self.RDA = std.role_index(Role.READ_AP)
        self.WRA = std.role_index(Role.WRITE_AP)

        # rules[level][preceding] -> [(following, latency, window)], sibling rules apart.
        levels = bank_level + 1
        self.rules = [[[] for _ in range(ncmd)] for _ in range(levels)]
        self.sibling_rules = [[[] for _ in range(ncmd)] for _ in range(levels)]
        for r in dram.rules:
            if r.level > bank_level:
                continue  # no state below the bank
            target = self.sibling_rules if r.sibling else self.rules
            target[r.level][r.preceding].append((r.following, r.latency, r.window))
        # History depth per (level, command): the largest window of its rules there.
        self.history_depth = [[max([w for _, _, w in self.rules[lv][c]] + [1])
                               for c in range(ncmd)] for lv in range(levels)]
        self.history: dict[int, list[int]] = {}  # node*ncmd + command -> recent issue cycles

        # Path of each bank: the offset into `ready` of its node at every level.
        self.bank_offsets = [self._path_offsets(self.bank_address(b)) for b in range(self.banks)]
        self._plans: dict[tuple, tuple] = {}
        self._ready_sets: dict[tuple, tuple] = {}
        self._target_banks: dict[tuple, tuple] = {}

    # ---- addressing -------------------------------------------------------------------------

    def bank_address(self, bank: int) -> tuple[int, ...]:
        """(channel, ..., bank) ids of flat bank `bank`; the channel id is always 0 here."""
        ids = []
        for level in range(self.bank_level, 0, -1):
            ids.append(bank % self.sizes[level])
            bank //= self.sizes[level]
        return (0, *reversed(ids))

    def flat_bank(self, address: tuple[int, ...]) -> int:
        bank = 0
        for level in range(1, self.bank_level + 1):
            bank = bank * self.sizes[level] + address[level]
        return bank

    def _path_offsets(self, address: tuple[int, ...]) -> tuple[int, ...]:
        offsets, index = [], 0
        for level in range(self.bank_level + 1):
            if level:
                index = index * self.sizes[level] + address[level]
            offsets.append((self.level_first[level] + index) * self.ncmd)
        return tuple(offsets)

    def _walk(self, address: tuple[int, ...]):
        """(level, node index, is_target) for the nodes a command at `address` touches:
        the targets, and the siblings (non-matching children of a target)."""
        stack = [(0, 0, True)]
        while stack:
            level, index, is_target = stack.pop()
            yield level, index, is_target
            if not is_target or level == self.bank_level:
                continue
            want = address[level + 1]
            for k in range(self.sizes[level + 1]):
                stack.append((level + 1, index * self.sizes[level + 1] + k,
                              want == -1 or want == k))

    # ---- timing -----------------------------------------------------------------------------

    def _plan(self, command: int, address: tuple[int, ...]) -> tuple:
        key = (command, address)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        ncmd = self.ncmd
        updates, windowed, histories = [], [], []
        for level, index, is_target in self._walk(address):
            node = self.level_first[level] + index
            base = node * ncmd
            if not is_target:
                for following, latency, _ in self.sibling_rules[level][command]:
                    updates.append((base + following, latency))
                continue
            depth = self.history_depth[level][command]
            if depth > 1:
                histories.append((base + command, depth))
            for following, latency, window in self.rules[level][command]:
                if window == 1:
                    updates.append((base + following, latency))
                else:
                    windowed.append((base + command, base + following, latency, window))
        plan = (tuple(updates), tuple(windowed), tuple(histories))
        self._plans[key] = plan
        return plan

    def _update_timing(self, command: int, address: tuple[int, ...], clk: int) -> None:
        updates, windowed, histories = self._plan(command, address)
        ready = self.ready
        for index, latency in updates:
            t = clk + latency
            if ready[index] < t:
                ready[index] = t
        if histories:
            for key, depth in histories:
                past = self.history.get(key)
                if past is None:
                    past = self.history[key] = [-1] * depth
                past.insert(0, clk)
                past.pop()
            for key, index, latency, window in windowed:
                issued = self.history[key][window - 1]
                if issued >= 0 and ready[index] < issued + latency:
                    ready[index] = issued + latency

    def ready_indices(self, command: int, address: tuple[int, ...]) -> tuple[int, ...]:
        """Entries of `ready` that must all have passed for `command` at `address`."""
        key = (command, address)
        found = self._ready_sets.get(key)
        if found is None:
            found = tuple((self.level_first[level] + index) * self.ncmd + command
                          for level, index, is_target in self._walk(address) if is_target)
            self._ready_sets[key] = found
        return found

    def ready_at(self, command: int, address: tuple[int, ...]) -> int:
        """First cycle at which `command` at `address` meets every timing rule (given the
        commands issued so far)."""
        ready = self.ready
        return max(ready[i] for i in self.ready_indices(command, address))

    def bank_ready_at(self, command: int, bank: int) -> int:
        o0, o1, o2, o3 = self.bank_offsets[bank]
        ready = self.ready
        return max(ready[o0 + command], ready[o1 + command], ready[o2 + command],
                   ready[o3 + command])

    # ---- bank state -------------------------------------------------------------------------

    def target_banks(self, command: int, address: tuple[int, ...]) -> tuple[int, ...]:
        if not self.all_banks[command]:
            return (self.flat_bank(address),)
        key = (command, address)
        found = self._target_banks.get(key)
        if found is None:
            found = tuple(b for b in range(self.banks)
                          if all(a == -1 or a == v
                                 for a, v in zip(address[1:], self.bank_address(b)[1:],
                                                 strict=True)))
            self._target_banks[key] = found
        return found

    def prerequisite(self, command: int, address: tuple[int, ...], row: int = -1) -> int:
        """The command that must issue next on the way to `command` (Ramulator's preq)."""
        role = self.role[command]
        if role is Role.REFRESH_ALL:
            open_row = self.open_row
            for b in self.target_banks(command, address):
                if open_row[b] >= 0:
                    return self.PREA
            return command
        if role in (Role.PRECHARGE, Role.PRECHARGE_ALL):
            return command
        if role is Role.REFRESH_BANK:
            return self.PRE if self.open_row[self.flat_bank(address)] >= 0 else command
        open_row = self.open_row[self.flat_bank(address)]
        if open_row < 0:
            return self.ACT
        return command if open_row == row else self.PRE

    def issue(self, command: int, address: tuple[int, ...], bank: int, row: int,
              clk: int) -> None:
        """Record `command` at `clk`: timing first, then the bank state change. `bank` is the
        flat bank of a single-bank command (-1 for all-bank commands)."""
        self._update_timing(command, address, clk)
        if command == self.ACT:
            self.open_row[bank] = row
            self.bank_version[bank] += 1
        elif self.closing[command]:
            if bank >= 0:
                self.open_row[bank] = -1
                self.bank_version[bank] += 1
            else:
                for b in self.target_banks(command, address):
                    self.open_row[b] = -1
                    self.bank_version[b] += 1
