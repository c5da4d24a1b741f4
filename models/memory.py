"""A sparse byte-addressed DRAM image shared by the reference model and the testbench.

Contents are held as a few contiguous regions (numpy byte arrays), so gathering the planes of
hundreds of tokens is one fancy-indexing operation per region, not a Python loop per token.
Address ranges can be marked to answer with an AXI error (SLVERR or DECERR).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SLVERR = 2
DECERR = 3


@dataclass
class _Region:
    base: int
    data: np.ndarray  # uint8

    @property
    def end(self) -> int:
        return self.base + len(self.data)


@dataclass
class DramImage:
    """Sparse memory: unwritten bytes read as zero."""

    regions: list[_Region] = field(default_factory=list)
    error_ranges: list[tuple[int, int, int]] = field(default_factory=list)  # (lo, hi, resp)

    def write(self, addr: int, data: bytes | np.ndarray) -> None:
        data = np.frombuffer(bytes(data), dtype=np.uint8) if not isinstance(data, np.ndarray) \
            else data.astype(np.uint8, copy=False).reshape(-1)
        if addr < 0:
            raise ValueError(f"negative address {addr:#x}")
        end = addr + len(data)
        overlapping = [r for r in self.regions if r.base < end and addr < r.end]
        if len(overlapping) == 1 and overlapping[0].base <= addr and end <= overlapping[0].end:
            r = overlapping[0]
            r.data[addr - r.base:end - r.base] = data
            return
        # Merge the new bytes with every region they touch into one region.
        lo = min([addr] + [r.base for r in overlapping])
        hi = max([end] + [r.end for r in overlapping])
        merged = np.zeros(hi - lo, dtype=np.uint8)
        for r in overlapping:
            merged[r.base - lo:r.end - lo] = r.data
        merged[addr - lo:end - lo] = data
        self.regions = [r for r in self.regions if r not in overlapping]
        self.regions.append(_Region(lo, merged))
        self.regions.sort(key=lambda r: r.base)

    def read(self, addr: int, nbytes: int) -> bytes:
        for r in self.regions:  # fast path: the bytes lie inside one region (bus beats)
            if r.base <= addr and addr + nbytes <= r.base + len(r.data):
                return r.data[addr - r.base:addr - r.base + nbytes].tobytes()
        return self.gather(np.array([addr], dtype=np.int64), nbytes)[0].tobytes()

    def gather(self, addrs: np.ndarray, nbytes: int) -> np.ndarray:
        """(len(addrs), nbytes) bytes starting at each address."""
        addrs = np.asarray(addrs, dtype=np.int64)
        out = np.zeros((len(addrs), nbytes), dtype=np.uint8)
        offsets = np.arange(nbytes, dtype=np.int64)
        for r in self.regions:
            inside = (addrs >= r.base) & (addrs + nbytes <= r.end)
            if inside.any():
                out[inside] = r.data[(addrs[inside] - r.base)[:, None] + offsets]
            partial = ~inside & (addrs < r.end) & (addrs + nbytes > r.base)
            for i in np.nonzero(partial)[0]:  # rows straddling a region edge: rare
                a = int(addrs[i])
                lo, hi = max(a, r.base), min(a + nbytes, r.end)
                out[i, lo - a:hi - a] = r.data[lo - r.base:hi - r.base]
        return out

    def add_error_range(self, lo: int, hi: int, resp: int = SLVERR) -> None:
        """Reads touching [lo, hi) answer with `resp` (SLVERR=2 or DECERR=3)."""
        if resp not in (SLVERR, DECERR):
            raise ValueError("resp must be SLVERR (2) or DECERR (3)")
        self.error_ranges.append((lo, hi, resp))

    def error_for(self, addrs: np.ndarray, nbytes: int) -> int:
        """0 if every [a, a+nbytes) read is clean, else the response of the first error."""
        if not self.error_ranges:
            return 0
        if isinstance(addrs, list) and len(addrs) == 1:  # one bus beat: no numpy
            a = int(addrs[0])
            for lo, hi, resp in self.error_ranges:
                if a < hi and a + nbytes > lo:
                    return resp
            return 0
        addrs = np.asarray(addrs, dtype=np.int64)
        for lo, hi, resp in self.error_ranges:
            if ((addrs < hi) & (addrs + nbytes > lo)).any():
                return resp
        return 0
