"""How the fetcher (hdl/spatten_fetcher.v) turns bus-word addresses into AXI bursts, and how many
DRAM transactions the responder (verif/axi_read_responder.py) makes of them.

Fetcher rule: a beat extends the open burst when it is the next address, the burst has fewer
than MAX_BURST (16) beats and the beat does not start a 4 KiB page; otherwise it opens a new
burst. Responder rule: each burst is split into the DRAM model's transactions (tx_bytes, 64 B
on DDR4, 32 B on HBM2), one per distinct tx-aligned block the burst touches; two bursts touching
the same block each pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FetchCount:
    beats: int
    bursts: int
    transactions: int

    def __add__(self, other: FetchCount) -> FetchCount:
        return FetchCount(self.beats + other.beats, self.bursts + other.bursts,
                          self.transactions + other.transactions)


NO_FETCH = FetchCount(0, 0, 0)


def count_fetch(addrs: np.ndarray, bus_bytes: int = 32, max_burst: int = 16,
                tx_bytes: int = 64) -> FetchCount:
    """Beats, bursts and DRAM transactions of reading the bus words at `addrs`, in order."""
    n = int(addrs.size)
    if n == 0:
        return NO_FETCH
    # run starts: not the next address, or a 4 KiB page start
    brk = np.ones(n, dtype=bool)
    brk[1:] = (addrs[1:] != addrs[:-1] + bus_bytes)
    brk |= (addrs % 4096) == 0
    brk[0] = True
    run_id = np.cumsum(brk) - 1
    pos_in_run = np.arange(n) - np.flatnonzero(brk)[run_id]
    # a run longer than max_burst is cut every max_burst beats
    burst_start = brk | ((pos_in_run % max_burst) == 0)
    burst_id = np.cumsum(burst_start) - 1
    block = addrs // tx_bytes
    # a transaction per (burst, block) pair; blocks within a burst are ascending
    new_tx = np.ones(n, dtype=bool)
    new_tx[1:] = (block[1:] != block[:-1]) | (burst_id[1:] != burst_id[:-1])
    return FetchCount(n, int(burst_start.sum()), int(new_tx.sum()))
