"""Physical address -> (channel, DRAM coordinates).

The channel mapper strips the channel bits first (CacheLineInterleave: the channel index sits just
above the transaction offset, plus `interleave_bits`); the per-channel address mapper then splits
the rest into rank/bank-group/bank/row/column fields. Bit fields are sliced from the LSB up, as
in Ramulator 2. Each mapper has a scalar `map` and a vectorised `map_many` (numpy) for traces.
"""

from __future__ import annotations

import numpy as np

from .config import ConfigError, DramSpec


def _log2(n: int) -> int:
    return n.bit_length() - 1


class ChannelMapper:
    """CacheLineInterleave: channel = the log2(channels) bits above the transaction offset."""

    def __init__(self, channels: int, tx_bytes: int, interleave_bits: int = 0):
        self.channels = channels
        self.shift = _log2(tx_bytes) + interleave_bits
        self.width = _log2(channels)

    def split(self, addr: int) -> tuple[int, int]:
        if self.channels == 1:
            return 0, addr
        channel = (addr >> self.shift) & ((1 << self.width) - 1)
        low = addr & ((1 << self.shift) - 1)
        high = addr >> (self.shift + self.width)
        return channel, (high << self.shift) | low

    def split_many(self, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.channels == 1:
            return np.zeros(len(addrs), dtype=np.int64), addrs
        channel = (addrs >> self.shift) & ((1 << self.width) - 1)
        low = addrs & ((1 << self.shift) - 1)
        high = addrs >> (self.shift + self.width)
        return channel, (high << self.shift) | low


class AddressMapper:
    """Base: field widths per mapped level (channel excluded; the column counts bursts)."""

    name = "base"

    def __init__(self, dram: DramSpec):
        sizes = dram.level_sizes
        self.levels = len(sizes) - 1  # mapped levels: everything below the channel
        self.bits = [_log2(s) for s in sizes[1:]]
        self.col_index = self.levels - 1
        self.row_index = dram.standard.row_level - 1
        self.bits[self.col_index] -= _log2(dram.standard.internal_prefetch)
        if self.bits[self.col_index] < 0:
            raise ConfigError("the column level is smaller than the internal prefetch")
        self.tx_offset = _log2(dram.tx_bytes)

    def map(self, addr: int) -> list[int]:
        """Coordinates of one channel-local byte address: [rank.., bank, row, column]."""
        return [int(v) for v in self._fields(addr >> self.tx_offset)]

    def map_many(self, addrs: np.ndarray) -> list[np.ndarray]:
        """`map` for an array of addresses: one int64 array per level."""
        return self._fields(np.asarray(addrs, dtype=np.int64) >> self.tx_offset)

    def _fields(self, rest):
        """Split a transaction index (int or int64 array) into level fields."""
        raise NotImplementedError


def _slice(value: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    return value & ((1 << bits) - 1), value >> bits


class RoBaRaCoCh(AddressMapper):
    """MSB..LSB: row, bank, bank group, rank, column (then the transaction offset).

    Consecutive transactions walk the columns of one row, so a stream stays in one bank."""

    name = "RoBaRaCoCh"

    def _fields(self, rest):
        fields: list[np.ndarray] = [None] * self.levels  # type: ignore[list-item]
        fields[self.col_index], rest = _slice(rest, self.bits[self.col_index])
        for i in range(self.row_index + 1):
            fields[i], rest = _slice(rest, self.bits[i])
        return fields


class ChRaBaRoCo(AddressMapper):
    """MSB..LSB: rank, bank group, bank, row, column: each bank owns one contiguous range."""

    name = "ChRaBaRoCo"

    def _fields(self, rest):
        fields: list[np.ndarray] = [None] * self.levels  # type: ignore[list-item]
        for i in range(self.levels - 1, -1, -1):
            fields[i], rest = _slice(rest, self.bits[i])
        return fields


class MOP4CLXOR(AddressMapper):
    """Ramulator's MOP4CLXOR: the two lowest column bits come first (four consecutive
    transactions form a chunk), then rank/bank group/bank, then the rest of the column, then
    the row; finally the rank/bank-group/bank fields are XORed with successive column bits,
    exactly as Ramulator 2.1's implementation does."""

    name = "MOP4CLXOR"

    def __init__(self, dram: DramSpec):
        super().__init__(dram)
        if self.bits[self.col_index] < 2:
            raise ConfigError("MOP4CLXOR needs at least 2 column bits")

    def _fields(self, rest):
        fields: list[np.ndarray] = [None] * self.levels  # type: ignore[list-item]
        col_low, rest = _slice(rest, 2)
        for i in range(self.row_index):
            fields[i], rest = _slice(rest, self.bits[i])
        col_high, rest = _slice(rest, self.bits[self.col_index] - 2)
        column = col_low + (col_high << 2)
        fields[self.col_index] = column
        fields[self.row_index] = rest
        xor_shift = 0
        for i in range(self.col_index):
            if self.bits[i] > 0:
                fields[i] = fields[i] ^ ((column >> xor_shift) & ((1 << self.bits[i]) - 1))
                xor_shift += self.bits[i]
        return fields


MAPPERS = {m.name: m for m in (RoBaRaCoCh, ChRaBaRoCo, MOP4CLXOR)}


def make_mapper(name: str, dram: DramSpec) -> AddressMapper:
    try:
        return MAPPERS[name](dram)
    except KeyError:
        raise ConfigError(f"unknown address mapper {name!r}; known: {', '.join(MAPPERS)}") from None
