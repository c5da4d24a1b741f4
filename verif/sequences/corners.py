"""Directed corners: the edges of every descriptor field and of the pruning state.

one token; L_MAX tokens; v_topk = 1, n - 1, n (k = all); LSB threshold 0 and max; every legal
MSB/LSB/V width combination; all heads pruned but one (then a job on every head: all but one
HEAD_SKIPPED); tokens pruned down to one, then a job whose n_tokens stops below the kept token
(NO_TOKENS). `SaturationSeq` (separate, long) drives head importance to saturation.
"""

from __future__ import annotations

from spatten_dv.models.descriptor import Job
from spatten_dv.models.params import LSB_WIDTHS, PLANE_WIDTHS, QKV_BITS
from spatten_dv.models.softmax import score_scale
from spatten_dv.verif.sequences.base import JobSequence


class CornersSeq(JobSequence):
    def head(self, n: int, widths=(12, 0, 12), spread: float = 300.0, private=False,
             v_scale: float = 500.0):
        k12, v12 = self.rand12(n, spread), self.rand12(n, v_scale)
        place = self.alloc.place_private if private else self.alloc.place
        pb = place(k12, v12, *widths)
        mult, shift = score_scale(spread * spread * 1e-5)
        return dict(query=self.rand12(1, spread)[0], n_tokens=n, k_msb_base=pb.k_msb_base,
                    k_lsb_base=pb.k_lsb_base, v_base=pb.v_base, msb_bits=widths[0],
                    lsb_bits=widths[1], v_bits=widths[2], score_mult=mult, score_shift=shift,
                    params=self.params)

    async def body(self):
        p = self.params
        L = p.max_tokens
        await self.send(Job(**self.head(1), clear_tokens=True, clear_heads=True), "one token")
        await self.send(Job(**self.head(L), acc_tokens=True), "L_MAX tokens")
        for vk, what in ((1, "k=1"), (63, "k=n-1"), (64, "k=all (n)"), (200, "k>n")):
            await self.send(Job(**self.head(64), v_topk=vk), f"v_topk {what}")
        for thr in (0, 0xFFFF):
            await self.send(Job(**self.head(100, (8, 4, 8)), requant_thresh=thr),
                            f"threshold {thr}")
        for msb in PLANE_WIDTHS:
            for lsb in LSB_WIDTHS:
                if msb + lsb > QKV_BITS:
                    continue
                for vb in PLANE_WIDTHS:
                    await self.send(Job(**self.head(24, (msb, lsb, vb)),
                                        requant_thresh=0xFFFF if lsb else 0),
                                    f"widths {msb}/{lsb}/{vb}")
        # all heads pruned but one (of every head the state tracks)
        H = p.max_heads
        for h in range(H):
            await self.send(Job(**self.head(8), head_id=h, n_heads=H, acc_heads=True,
                                clear_heads=h == 0), f"heads: accumulate head {h}")
        await self.send(Job(**self.head(32), head_id=0, n_heads=H, head_keep=1),
                        f"heads: keep 1 of {H}")
        for h in range(H):
            await self.send(Job(**self.head(8), head_id=h, n_heads=H), f"heads: job on {h}")
        await self.send(Job(**self.head(16), clear_heads=True), "heads: clear")
        # tokens pruned to one, then n_tokens below it
        await self.send(Job(**self.head(100), clear_tokens=True, acc_tokens=True),
                        "tokens: accumulate")
        await self.send(Job(**self.head(100), token_keep=1, acc_tokens=True),
                        "tokens: keep 1 of 100")
        await self.send(Job(**self.head(1)), "tokens: n=1 (token 0 may be pruned)")
        await self.send(Job(**self.head(100), token_keep=100), "tokens: keep >= count (no-op)")
        await self.send(Job(**self.head(50), clear_tokens=True), "tokens: clear")


class SaturationSeq(CornersSeq):
    """Head importance to 2^32 - 1: ~2,050 one-token jobs whose |out| sum is near 2^21."""

    async def body(self):
        import torch

        d = self.params.head_dim
        v = torch.full((1, d), 2047, dtype=torch.int64)
        k = torch.zeros((1, d), dtype=torch.int64)
        pb = self.alloc.place_private(k, v, 12, 0, 12)
        q = torch.zeros(d, dtype=torch.int64)
        per_job = d * 2047 * 16  # |out| sum of one job: p = 1.0 on V = 2047 (x16)
        jobs = (1 << 32) // per_job + 2
        self.logger.info("saturation: %d jobs of |out| sum %d", jobs, per_job)
        for i in range(jobs):
            await self.send(Job(query=q, n_tokens=1, k_msb_base=pb.k_msb_base,
                                v_base=pb.v_base, acc_heads=True, acc_tokens=True,
                                clear_heads=i == 0, clear_tokens=i == 0, params=self.params),
                            f"saturate {i}")


class ProbeSeq(CornersSeq):
    """Four short jobs that give every checker something to see (the expect-fail tests): LSB
    refetches, a token prune (kept and pruned tokens in the state), value pruning."""

    async def body(self):
        await self.send(Job(**self.head(48, (8, 4, 8)), clear_tokens=True, clear_heads=True,
                            acc_tokens=True, acc_heads=True, requant_thresh=0xFFFF), "accumulate")
        await self.send(Job(**self.head(48, (8, 4, 8)), token_keep=12, acc_tokens=True,
                            requant_thresh=0xFFFF), "prune to 12")
        await self.send(Job(**self.head(48, (6, 4, 8)), v_topk=5, requant_thresh=0xFFFF),
                        "v_topk 5")
        await self.send(Job(**self.head(20)), "dense")
