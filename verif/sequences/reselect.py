"""Directed sequence for the per-step re-selection controls (docs/architecture.md section 7,
steps 3, 4 and 6): reselect, imp_shift, protect_sink / protect_recent.

Accumulate, prune hard, accumulate on the survivors, then reselect + token_keep: tokens pruned
earlier come back by their importance (a sequence check asserts that some do); rescale by 1 and
by 31 (to zero: the prune falls back to the lowest indices); protection below, equal to and above
the budget, sink and recent overlapping, counts beyond n_tokens; reselect with n_tokens below the
pruned range (tokens >= n untouched); the controls on an invalid job (no state change) and on a
HEAD_SKIPPED job (state changes stay); an L_MAX-token job with all of them. Every result and the
state read back after every state-changing job are compared with the model by the scoreboard.
"""

from __future__ import annotations

from spatten_dv.models.descriptor import Job
from spatten_dv.verif.sequences.corners import CornersSeq


class ReselectSeq(CornersSeq):
    async def body(self):
        L = self.params.max_tokens
        n = 200
        survivors: dict[str, list[int]] = {}

        def remember(name):
            def check(ref):
                survivors[name] = ref.keys.tolist()
                return []
            return check

        def brings_back(ref):
            before = set(survivors.get("pruned", []))
            back = [t for t in ref.keys.tolist() if t not in before]
            if not before or not back:
                return [f"reselect kept no token that the prune to 20 had removed "
                        f"(kept {ref.n_keys})"]
            return []

        async def job(label, size=n, check=None, **kw):
            await self.send(Job(**self.head(size), **kw), f"reselect: {label}", check=check)

        await job("accumulate 1", clear_tokens=True, clear_heads=True, acc_tokens=True)
        await job("accumulate 2", acc_tokens=True)
        await job("prune to 20", token_keep=20, acc_tokens=True, check=remember("pruned"))
        for i in range(3):
            await job(f"accumulate on 20 ({i})", acc_tokens=True)
        await job("reselect + keep 50 brings pruned tokens back", reselect=True, token_keep=50,
                  acc_tokens=True, check=brings_back)
        await job("reselect + keep >= count (no prune)", reselect=True, token_keep=n)
        await job("rescale 1 + reselect + keep 30", reselect=True, imp_shift=1, token_keep=30,
                  acc_tokens=True)
        await job("protect S=4 W=8 keep 40", reselect=True, token_keep=40, protect_sink=4,
                  protect_recent=8, acc_tokens=True)
        await job("protected 60 > keep 20", reselect=True, token_keep=20, protect_sink=30,
                  protect_recent=30)
        await job("protected = keep", reselect=True, token_keep=12, protect_sink=6,
                  protect_recent=6, acc_tokens=True)
        await job("S and W overlap", reselect=True, token_keep=25, protect_sink=150,
                  protect_recent=100, acc_tokens=True)
        await job("S beyond n", reselect=True, token_keep=15, protect_sink=L)
        await job("W beyond n, no reselect", token_keep=10, protect_recent=L)
        await job("protection without keep", protect_sink=3, protect_recent=3)
        await job("reselect below the pruned range", size=60, reselect=True, acc_tokens=True)
        await job("rescale 31 to zero + keep 10", reselect=True, imp_shift=31, token_keep=10)
        await job("accumulate after zero", acc_tokens=True, reselect=True)
        await self.send(Job(**dict(self.head(n), msb_bits=5), reselect=True, imp_shift=4,
                            token_keep=5, protect_sink=2), "reselect: invalid job, no change")
        await job("rescale on a skipped head", reselect=True, imp_shift=2, token_keep=7,
                  head_keep=1, head_id=1, n_heads=2, clear_heads=True)
        await job("heads back", clear_heads=True, acc_tokens=True)
        await job("L_MAX: accumulate", size=L, acc_tokens=True, reselect=True)
        await job("L_MAX: prune to 64", size=L, token_keep=64, acc_tokens=True)
        await job("L_MAX: all controls", size=L, reselect=True, imp_shift=3, token_keep=300,
                  protect_sink=4, protect_recent=16, acc_tokens=True)
        await job("clear for the next sequence", size=16, clear_tokens=True)
