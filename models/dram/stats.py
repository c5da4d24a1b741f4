"""Statistics of a memory system run, counted the way Ramulator 2 counts them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class ChannelStats:
    """Counters of one controller (channel)."""

    reads: int = 0  # read requests accepted (forwarded ones included)
    writes: int = 0  # write requests accepted (coalesced ones included)
    reads_forwarded: int = 0
    writes_coalesced: int = 0
    reads_served: int = 0
    writes_served: int = 0
    maintenance_served: int = 0  # refreshes and row-policy precharges issued to completion
    refreshes_queued: int = 0
    # Row-buffer outcome of each request at its first command: hit (row open), conflict
    # (another row open), miss (bank closed).
    read_row_hits: int = 0
    read_row_misses: int = 0
    read_row_conflicts: int = 0
    write_row_hits: int = 0
    write_row_misses: int = 0
    write_row_conflicts: int = 0
    read_latency_sum: int = 0
    read_latencies: Counter = field(default_factory=Counter)
    # Sum over controller cycles of each queue's length at the start of the cycle.
    read_queue_sum: int = 0
    write_queue_sum: int = 0
    priority_queue_sum: int = 0
    commands: Counter = field(default_factory=Counter)  # command name -> count issued
    ticks: int = 0


@dataclass
class RunStats:
    """Totals over all channels, plus per-channel detail."""

    cycles: int
    tCK_ns: float
    tx_bytes: int
    channels: list[ChannelStats]
    cycles_last_accept: int = 0

    def _sum(self, name: str) -> int:
        return sum(getattr(c, name) for c in self.channels)

    @property
    def reads(self) -> int:
        return self._sum("reads")

    @property
    def writes(self) -> int:
        return self._sum("writes")

    @property
    def row_hits(self) -> int:
        return self._sum("read_row_hits") + self._sum("write_row_hits")

    @property
    def row_misses(self) -> int:
        return self._sum("read_row_misses") + self._sum("write_row_misses")

    @property
    def row_conflicts(self) -> int:
        return self._sum("read_row_conflicts") + self._sum("write_row_conflicts")

    @property
    def read_latencies(self) -> Counter:
        total: Counter = Counter()
        for c in self.channels:
            total.update(c.read_latencies)
        return total

    @property
    def avg_read_latency(self) -> float:
        served = self._sum("reads_served")
        return self._sum("read_latency_sum") / served if served else 0.0

    def latency_percentile(self, q: float) -> int:
        """Smallest latency L with at least a fraction q of reads at or below L."""
        counts = self.read_latencies
        total = sum(counts.values())
        if not total:
            return 0
        need, seen = q * total, 0
        for latency in sorted(counts):
            seen += counts[latency]
            if seen >= need:
                return latency
        return max(counts)

    def latency_histogram(self, bin_width: int = 16) -> list[tuple[int, int, int]]:
        """[(low, high_exclusive, count)] over the read latencies, empty bins included."""
        counts = self.read_latencies
        if not counts:
            return []
        bins: Counter = Counter()
        for latency, n in counts.items():
            bins[latency // bin_width] += n
        return [(b * bin_width, (b + 1) * bin_width, bins.get(b, 0))
                for b in range(min(bins), max(bins) + 1)]

    @property
    def bytes_transferred(self) -> int:
        return (self._sum("reads_served") + self._sum("writes_served")) * self.tx_bytes

    @property
    def time_ns(self) -> float:
        return self.cycles * self.tCK_ns

    @property
    def bandwidth_GBps(self) -> float:
        return self.bytes_transferred / self.time_ns if self.cycles else 0.0

    def queue_average(self, name: str) -> float:
        """Average length of one queue ('read', 'write', 'priority') per channel-cycle."""
        ticks = self._sum("ticks")
        return self._sum(f"{name}_queue_sum") / ticks if ticks else 0.0

    def to_dict(self) -> dict:
        commands: Counter = Counter()
        for c in self.channels:
            commands.update(c.commands)
        return {
            "cycles": self.cycles,
            "reads": self.reads,
            "writes": self.writes,
            "row_hits": self.row_hits,
            "row_misses": self.row_misses,
            "row_conflicts": self.row_conflicts,
            "read_row_hits": self._sum("read_row_hits"),
            "read_row_misses": self._sum("read_row_misses"),
            "read_row_conflicts": self._sum("read_row_conflicts"),
            "write_row_hits": self._sum("write_row_hits"),
            "write_row_misses": self._sum("write_row_misses"),
            "write_row_conflicts": self._sum("write_row_conflicts"),
            "avg_read_latency_cycles": round(self.avg_read_latency, 4),
            "read_latency_p50_cycles": self.latency_percentile(0.5),
            "read_latency_p99_cycles": self.latency_percentile(0.99),
            "read_latency_max_cycles": max(self.read_latencies, default=0),
            "read_latency_histogram": [list(b) for b in self.latency_histogram()],
            "tCK_ns": self.tCK_ns,
            "time_ns": round(self.time_ns, 3),
            "bytes": self.bytes_transferred,
            "achieved_GBps": round(self.bandwidth_GBps, 4),
            "read_queue_len_avg": round(self.queue_average("read"), 4),
            "write_queue_len_avg": round(self.queue_average("write"), 4),
            "priority_queue_len_avg": round(self.queue_average("priority"), 4),
            "reads_forwarded": self._sum("reads_forwarded"),
            "writes_coalesced": self._sum("writes_coalesced"),
            "refreshes": commands.get("REFab", 0),
            "cycles_last_accept": self.cycles_last_accept,
            "commands": dict(sorted(commands.items())),
            "channels": len(self.channels),
        }
