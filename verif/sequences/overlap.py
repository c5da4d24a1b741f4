"""Directed sequence for the job pipeline (docs/architecture.md section 11): jobs sent back to
back so that the next job's stage A (check .. value selection, its K fetch included) runs while
the previous job is in stage B (V pass, accumulation, result), and every hazard of section 11
is one job away from the accumulation it depends on.

Each hazard pair is built so that a core which did not wait would return different results:
  * token prune right after an accumulation that decides its ranking (importance cleared before,
    so without the wait every importance is 0 and the prune keeps the lowest indices);
  * head prune right after the accumulation of the one head with large values (without the wait
    that head has importance 0 and is pruned);
  * clear_tokens right after an accumulation (without the wait the accumulation lands after the
    clear, and the prune that follows ranks by it);
  * reselect + imp_shift + token_keep right after an accumulation.
Then plain jobs that overlap: alternating list banks with different sizes, value selections and
LSB refetches; an invalid job, a HEAD_SKIPPED job and a NO_TOKENS job between overlapped plain
jobs (they pass through stage B in order). Results are compared with the sequential model in
order by the scoreboard; run it with state_check = false (ci/tiers.yaml) or the driver's state
readback after every state-changing job keeps the jobs apart.
"""

from __future__ import annotations

from spatten_dv.models.descriptor import Job
from spatten_dv.verif.sequences.corners import CornersSeq


class OverlapSeq(CornersSeq):
    async def job(self, label: str, n: int = 200, **kw) -> None:
        head_kw = {k: kw.pop(k) for k in ("widths", "v_scale") if k in kw}
        await self.send(Job(**self.head(n, **head_kw), **kw), f"overlap: {label}")

    async def body(self):
        L = self.params.max_tokens
        H = 4
        # token prune after the accumulation that ranks it
        await self.job("clear", n=16, clear_tokens=True, clear_heads=True)
        await self.job("accumulate (ranks the next prune)", acc_tokens=True, v_topk=40)
        await self.job("token prune right after it", token_keep=30, acc_tokens=True)
        await self.job("plain on the 30 kept", acc_tokens=True)
        # head prune after the accumulation of the one large head
        for h in range(H - 1):
            await self.job(f"heads: accumulate small head {h}", n=32, head_id=h, n_heads=H,
                           acc_heads=True, v_scale=20.0)
        await self.job("heads: accumulate the large head", n=32, head_id=H - 1, n_heads=H,
                       acc_heads=True, v_scale=2000.0)
        await self.job("heads: keep 1 right after it", n=32, head_id=0, n_heads=H, head_keep=1)
        for h in range(H):
            await self.job(f"heads: job on head {h} (kept or skipped)", n=32, head_id=h,
                           n_heads=H, acc_tokens=True)
        await self.job("heads: clear", n=8, clear_heads=True)
        # clear right after an accumulation, then a prune that ranks by what is left
        await self.job("accumulate before a clear", n=300, acc_tokens=True)
        await self.job("clear_tokens right after it", n=300, clear_tokens=True, acc_tokens=True)
        await self.job("prune by what the clear left", n=300, token_keep=50, acc_tokens=True)
        # reselect + rescale + prune right after an accumulation
        await self.job("accumulate before a reselect", n=300, acc_tokens=True, v_topk=100)
        await self.job("reselect + imp_shift 1 + keep 120 right after it", n=300, reselect=True,
                       imp_shift=1, token_keep=120, acc_tokens=True)
        await self.job("reselect all back", n=300, reselect=True, acc_tokens=True)
        # plain jobs back to back: list banks alternate, sizes, value selection, LSB refetch
        for i, (n, vk, widths) in enumerate(((300, 0, (12, 0, 12)), (17, 5, (6, 0, 6)),
                                              (L, 200, (8, 4, 8)), (5, 1, (4, 0, 4)),
                                              (64, 0, (6, 6, 6)), (300, 299, (12, 0, 8)))):
            await self.job(f"plain {i}: n={n} v_topk={vk} widths {widths}", n=n, v_topk=vk,
                           widths=widths, requant_thresh=0xFFFF if widths[1] else 0,
                           acc_tokens=True)
        # jobs that end in stage A between overlapped plain jobs
        await self.job("plain before an invalid job", n=120, acc_tokens=True)
        await self.send(Job(**dict(self.head(120), msb_bits=5), acc_tokens=True),
                        "overlap: invalid descriptor (BAD_WIDTH)")
        await self.job("plain after it", n=120, acc_tokens=True)
        await self.job("heads: keep 1 of 2 (head 1 skipped next)", n=16, head_id=0, n_heads=2,
                       head_keep=1, clear_heads=True)
        await self.job("plain before a skipped head", n=120, head_id=0, n_heads=2,
                       acc_tokens=True)
        await self.job("HEAD_SKIPPED", n=120, head_id=1, n_heads=2, acc_tokens=True)
        await self.job("plain after it", n=120, head_id=0, n_heads=2, acc_tokens=True)
        await self.job("prune to token 99 (protected recent)", n=100, clear_tokens=True,
                       clear_heads=True, acc_tokens=True, token_keep=1, protect_recent=1)
        await self.job("plain with 100 tokens", n=100, acc_tokens=True)
        await self.job("NO_TOKENS (n = 50 < the kept token)", n=50, acc_tokens=True)
        await self.job("plain after it", n=100, acc_tokens=True)
        await self.job("clear for the next sequence", n=16, clear_tokens=True, clear_heads=True)
