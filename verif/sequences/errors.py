"""Errors: every invalid-descriptor status and AXI SLVERR / DECERR in each plane and pass.

Each invalid descriptor must come back with its status, zeros, no AXI request and no state
change; each AXI error ends its job with AXI_SLVERR / AXI_DECERR after the bursts in flight
drain, and the next (normal) job must be exact. The error planes are private (never reused), as
their DRAM error ranges stay in place.
"""

from __future__ import annotations

from spatten_dv.models.descriptor import Job
from spatten_dv.models.memory import DECERR, SLVERR
from spatten_dv.verif.sequences.corners import CornersSeq


class ErrorsSeq(CornersSeq):
    async def body(self):
        p = self.params
        base = self.head(64, (8, 4, 8))
        bad = [
            (dict(n_heads=0), "BAD_HEAD n_heads=0"),
            (dict(n_heads=p.max_heads + 1), "BAD_HEAD n_heads>H_MAX"),
            (dict(head_id=3, n_heads=3), "BAD_HEAD head_id>=n_heads"),
            (dict(n_tokens=0), "NO_TOKENS n=0"),
            (dict(n_tokens=p.max_tokens + 1), "TOO_MANY_TOKENS"),
            (dict(msb_bits=5), "BAD_WIDTH msb 5"),
            (dict(lsb_bits=2), "BAD_WIDTH lsb 2"),
            (dict(v_bits=7), "BAD_WIDTH v 7"),
            (dict(msb_bits=8, lsb_bits=6), "BAD_WIDTH msb+lsb>12"),
            (dict(k_msb_base=base["k_msb_base"] + p.bus_bytes // 2), "BAD_ADDR K MSB misaligned"),
            (dict(k_lsb_base=base["k_lsb_base"] + p.bus_bytes // 4), "BAD_ADDR K LSB misaligned"),
            (dict(v_base=base["v_base"] + p.bus_bytes // 8), "BAD_ADDR V misaligned"),
            (dict(k_msb_base=(1 << 32) - 64 * 32), "BAD_ADDR K MSB past 4 GiB"),
            (dict(k_lsb_base=(1 << 32) - 32 * 32), "BAD_ADDR K LSB past 4 GiB"),
            (dict(v_base=(1 << 32) - 64 * 32), "BAD_ADDR V past 4 GiB"),
        ]
        await self.send(Job(**base, acc_tokens=True, acc_heads=True), "before errors")
        for change, label in bad:
            # state flags on: an invalid job must not change the state (the readback checks)
            await self.send(Job(**dict(base, **change), acc_tokens=True, acc_heads=True,
                                token_keep=5, head_keep=1, reselect=True, imp_shift=3,
                                protect_sink=2), label)
        # AXI errors in each plane (the LSB plane only in an LSB pass), over every n_tokens bin
        sizes = [n for n in (1, 20, 100, 300, 700) if n < p.max_tokens] + [p.max_tokens]
        planes = ("k_msb_base", "k_lsb_base", "v_base")
        for resp, rname in ((SLVERR, "SLVERR"), (DECERR, "DECERR")):
            for i, n in enumerate(sizes):
                plane = planes[i % 3]
                h = self.head(n, (8, 4, 8), private=True)
                stride = p.token_bytes({"k_msb_base": 8, "k_lsb_base": 4, "v_base": 8}[plane])
                tok = self.rng.randrange(n)
                self.memory.add_error_range(h[plane] + stride * tok,
                                            h[plane] + stride * (tok + 1), resp)
                await self.send(Job(**h, requant_thresh=0xFFFF, acc_tokens=True,
                                    acc_heads=True),
                                f"AXI {rname} in {plane[:-5]} token {tok} of {n}")
                await self.send(Job(**self.head(64, (8, 4, 8)), requant_thresh=0xFFFF,
                                    acc_tokens=True), f"after AXI {rname}")
