"""Constrained-random jobs (cocotb-coverage's constrained randomization), seeded by the test.

`RandomJobKnobs` (a `cocotb_coverage.crv.Randomized`) draws each job's shape: widths under the
legality constraint msb + lsb <= 12, an n_tokens bin (token counts are then uniform inside it),
a v_topk mode, a token/head pruning mode, the LSB threshold corner, the state flags and the
re-selection controls (reselect, imp_shift, protection of sink/recent tokens; every value is
legal, so no constraint ties them to the rest). K/V are
random 12-bit heads (Gaussian, random spread). Knob `jobs`: how many. `BackToBackSeq` is the
same with short jobs, meant for the back-to-back stress test (state_check off).
"""

from __future__ import annotations

import math
import random

import numpy as np
from cocotb_coverage.crv import Randomized

from spatten_dv.models.descriptor import Job
from spatten_dv.models.softmax import score_scale
from spatten_dv.verif.sequences.base import JobSequence

N_RANGES = {"1": (1, 1), "2-31": (2, 31), "32-127": (32, 127), "128-511": (128, 511),
            "512-1023": (512, 1023), "1024": (1024, 1024)}


class RandomJobKnobs(Randomized):
    def __init__(self, n_weights: dict[str, int]):
        super().__init__()
        self.msb, self.lsb, self.vb = 12, 0, 12
        self.n_bin = "32-127"
        self.vk_mode = "all"
        self.keep_mode = "none"
        self.thr_mode = "mid"
        self.flags = 0
        self.resel_mode = "none"
        self.protect_mode = "none"
        self.add_rand("msb", [4, 6, 8, 12])
        self.add_rand("lsb", [0, 4, 6, 8])
        self.add_rand("vb", [4, 6, 8, 12])
        self.add_rand("n_bin", list(n_weights))
        self.add_rand("vk_mode", ["all", "k1", "frac", "ge"])
        self.add_rand("keep_mode", ["none", "tokens", "heads", "both"])
        self.add_rand("thr_mode", ["zero", "mid", "max"])
        self.add_rand("flags", list(range(16)))  # acc_tokens, acc_heads, clear_t, clear_h
        self.add_rand("resel_mode", ["none", "reselect", "rescale", "both"])
        self.add_rand("protect_mode", ["none", "sink", "recent", "both"])
        self.add_constraint(lambda lsb, msb: msb + lsb <= 12)
        weights = dict(n_weights)
        self.add_constraint(lambda n_bin: weights[n_bin])  # a weight: a soft distribution
        self.add_constraint(lambda flags: 1 if flags & 12 else 4)  # clears are rarer
        self.add_constraint(lambda resel_mode: 3 if resel_mode == "none" else 1)


class RandomJobsSeq(JobSequence):
    N_WEIGHTS = {"1": 1, "2-31": 3, "32-127": 4, "128-511": 3, "512-1023": 1, "1024": 1}
    N_HEADS = 8

    async def body(self):
        random.seed(self.rng.randrange(1 << 62))  # crv draws from the global generators
        np.random.seed(self.rng.randrange(1 << 31))
        knobs = RandomJobKnobs(self.N_WEIGHTS)
        for i in range(self.cfg.jobs):
            knobs.randomize()
            msb, lsb, vb = int(knobs.msb), int(knobs.lsb), int(knobs.vb)  # numpy -> int
            lo, hi = N_RANGES[str(knobs.n_bin)]
            n = min(self.rng.randint(lo, hi), self.params.max_tokens)  # bins above L_MAX: L_MAX
            spread = self.rng.choice([30, 150, 400, 900])
            k12, v12 = self.rand12(n, spread), self.rand12(n, self.rng.choice([100, 600]))
            q12 = self.rand12(1, spread)[0]
            pb = self.alloc.place(k12, v12, msb, lsb, vb)
            mult, shift = score_scale(spread * spread * 1e-5 * self.rng.choice([0.3, 1, 3]))
            v_topk = {"all": 0, "k1": 1, "frac": max(1, math.ceil(n * self.rng.random())),
                      "ge": n}[str(knobs.vk_mode)]
            keep_mode_s = str(knobs.keep_mode)
            keep_t = self.rng.randint(1, n) if keep_mode_s in ("tokens", "both") else 0
            keep_h = self.rng.randint(1, self.N_HEADS) if keep_mode_s in ("heads", "both") \
                else 0
            thr = {"zero": 0, "mid": self.rng.randint(1, 65534),
                   "max": 65535}[str(knobs.thr_mode)]
            f = int(knobs.flags)
            resel = str(knobs.resel_mode)
            shift = self.rng.choice([1, 2, self.rng.randint(1, 31), 31]) \
                if resel in ("rescale", "both") else 0
            prot = str(knobs.protect_mode)
            sink = self.rng.choice([1, self.rng.randint(1, n), n + 5]) \
                if prot in ("sink", "both") else 0
            recent = self.rng.choice([1, self.rng.randint(1, n), n + 5]) \
                if prot in ("recent", "both") else 0
            job = Job(query=q12, n_tokens=n, k_msb_base=pb.k_msb_base, k_lsb_base=pb.k_lsb_base,
                      v_base=pb.v_base, msb_bits=msb, lsb_bits=lsb, v_bits=vb,
                      score_mult=mult, score_shift=shift, requant_thresh=thr, v_topk=v_topk,
                      token_keep=keep_t, head_keep=keep_h, acc_tokens=bool(f & 1),
                      acc_heads=bool(f & 2), clear_tokens=bool(f & 4), clear_heads=bool(f & 8),
                      reselect=resel in ("reselect", "both"), imp_shift=shift,
                      protect_sink=min(sink, self.params.max_tokens),
                      protect_recent=min(recent, self.params.max_tokens),
                      head_id=self.rng.randrange(self.N_HEADS), n_heads=self.N_HEADS,
                      params=self.params)
            await self.send(job, f"random {i} n={n} w{msb}/{lsb}/{vb}")


class BackToBackSeq(RandomJobsSeq):
    """Short random jobs sent back to back (pair with state_check=0)."""

    N_WEIGHTS = {"1": 2, "2-31": 4, "32-127": 2}
