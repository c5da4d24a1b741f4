"""A memory request as the controller sees it."""

from __future__ import annotations

READ = 0
WRITE = 1
MAINTENANCE = -1  # controller-generated command (refresh, row-policy precharge)


class Request:
    """One transaction (or one maintenance command) inside a controller.

    `path` is the (channel, ..., bank) node address, with -1 where a maintenance command covers
    every node of a level. `cmd` is the next command towards `final_cmd`; `ready_lb` is a lower
    bound on the cycle at which `cmd` becomes legal, valid while `state_version` equals the
    bank's version (the scheduler refreshes both lazily). `arrive`/`depart` are controller
    cycles; `depart` is the cycle the request completes (reads: data returned; writes: WR
    issued).
    """

    __slots__ = ("kind", "addr", "tag", "channel", "path", "bank", "row", "column",
                 "offsets", "final_cmd", "cmd", "ready_lb", "state_version", "stats_counted",
                 "arrive", "depart")

    def __init__(self, kind: int, addr: int, channel: int, path: tuple[int, ...], bank: int,
                 row: int, column: int, offsets: tuple[int, ...], final_cmd: int, tag=None):
        self.kind = kind
        self.addr = addr
        self.tag = tag
        self.channel = channel
        self.path = path
        self.bank = bank
        self.row = row
        self.column = column
        self.offsets = offsets
        self.final_cmd = final_cmd
        self.cmd = final_cmd
        self.ready_lb = 0
        self.state_version = -1
        self.stats_counted = False
        self.arrive = -1
        self.depart = -1

    @property
    def is_read(self) -> bool:
        return self.kind == READ

    @property
    def is_write(self) -> bool:
        return self.kind == WRITE

    @property
    def latency(self) -> int:
        return self.depart - self.arrive

    def __repr__(self) -> str:
        kind = {READ: "RD", WRITE: "WR", MAINTENANCE: "MAINT"}[self.kind]
        return (f"Request({kind} {self.addr:#x} ch{self.channel} path={self.path} "
                f"row={self.row} arrive={self.arrive} depart={self.depart})")
