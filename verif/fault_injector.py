"""Deliberate faults for the expect-fail tests: each proves one checker fires.

Knob `inject` names the fault; the scoreboard must report it as `CAUGHT_AS[fault]` first.
  corrupt_result  flip the low bit of out[0] of the first OK result
  drop_result     the result monitor loses the second result
  wrong_lsb       flip lsb_fetched of the first OK result of a job that has an LSB plane
  wrong_topk      in the first state snapshot with both kept and pruned tokens, swap one kept
                  token with one pruned token (a wrong cascade top-k set)
  wrong_counter   move one cycle of the first OK result from cyc_ctrl to cyc_qk (the sum still
                  equals cycles: only the per-key rule of the counter check can see it)
Faults are applied to what the monitors publish, never to the DUT or the model.
"""

from __future__ import annotations

CAUGHT_AS = {
    "corrupt_result": "out",
    "drop_result": "missing result",
    "wrong_lsb": "lsb_fetched",
    "wrong_topk": "token_kept",
    "wrong_counter": "counters",
}


class FaultInjector:
    def __init__(self, fault: str, sent_items):
        if fault not in CAUGHT_AS:
            raise ValueError(f"inject={fault!r}: choose one of {', '.join(CAUGHT_AS)}")
        self.fault = fault
        self.sent_items = sent_items  # the driver's list, to know each result's job
        self.done = False

    def on_result(self, res):
        if self.done:
            return res
        f = res.fields
        if self.fault == "drop_result" and res.index == 1:
            self.done = True
            return None
        if f["status"] != 0:
            return res
        if self.fault == "corrupt_result":
            f["out"][0] ^= 1
            self.done = True
        elif self.fault == "wrong_counter" and f["cyc_ctrl"]:
            f["cyc_ctrl"] -= 1
            f["cyc_qk"] += 1
            self.done = True
        elif self.fault == "wrong_lsb" and res.index < len(self.sent_items) \
                and self.sent_items[res.index].job.lsb_bits:
            f["lsb_fetched"] ^= 1
            self.done = True
        return res

    def on_state(self, snap):
        if self.done or self.fault != "wrong_topk":
            return snap
        kept = snap.tokens_kept
        if 1 in kept and 0 in kept:
            a, b = kept.index(1), kept.index(0)
            kept[a], kept[b] = 0, 1
            self.done = True
        return snap
