"""Scoreboard: predicts every job with the reference model from what the monitors saw.

On each descriptor the core took (descriptor monitor) the scoreboard runs ONE
`SpAttenCoreModel` (its pruning state carried across jobs, like the core's) on the unpacked
descriptor and the shared DramImage, and queues the expected result. Each result the result
monitor saw is compared with the oldest expected one field by field (`cycles` and the stage
counters are not modelled: the counters are checked for consistency with
core_scoreboard.counter_errors; `beats` is not compared for jobs that ended in an AXI error: how
many beats were in flight then depends on bus timing). Each state snapshot read back through the
core's debug port is compared entry by entry with the model's state at that point. The first
mismatch is reported with job, field, expected and actual; the check phase fails on any
mismatch and on missing or extra results. One JSON line per job goes to `<out>/jobs.jsonl` as
soon as it is checked.
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

from pyuvm import ConfigDB, uvm_analysis_port, uvm_component

from spatten_dv.models.core import SpAttenCoreModel
from spatten_dv.models.descriptor import OVERLAP_COUNTERS, STAGE_COUNTERS, JobResult, Status
from spatten_dv.models.params import DEFAULT_PARAMS, CoreParams
from spatten_dv.verif.core_scoreboard import counter_errors, expected_fields
from spatten_dv.verif.items import Forward

AXI_ERRORS = (Status.AXI_SLVERR, Status.AXI_DECERR)


class ScoreboardMismatch(AssertionError):
    """The DUT differs from the reference model (or results are missing / extra)."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


def compare_fields(got: dict, ref: JobResult,
                   params: CoreParams = DEFAULT_PARAMS) -> list[tuple[str, object, object]]:
    """(field, expected, actual) for each field where the DUT result differs from the model."""
    exp = expected_fields(ref)
    if ref.status in AXI_ERRORS:
        exp.pop("beats")
    diffs = []
    for name, want in exp.items():
        have = got.get(name)
        if have != want:
            if name == "out":
                bad = [d for d in range(len(want)) if have[d] != want[d]]
                diffs.append((f"out[{bad[0]}] ({len(bad)} elements differ)", want[bad[0]],
                              have[bad[0]]))
            else:
                diffs.append((name, want, have))
    diffs += [("counters", "consistent stage counters", e)
              for e in counter_errors(got, ref, params)]
    return diffs


class CoreScoreboard(uvm_component):
    def build_phase(self):
        self.cfg = ConfigDB().get(self, "", "CFG")
        self.memory = ConfigDB().get(self, "", "MEMORY")
        self.params = ConfigDB().get(self, "", "PARAMS")
        self.model = SpAttenCoreModel(self.params)
        self.desc_export = Forward("desc_export", self, self.on_descriptor)
        self.result_export = Forward("result_export", self, self.on_result)
        self.state_export = Forward("state_export", self, self.on_state)
        self.checked_ap = uvm_analysis_port("checked_ap", self)  # (desc, ref, result)
        self.expected: deque = deque()
        self.mismatches: list[ScoreboardMismatch] = []
        self.records = 0
        self.extra = 0
        self.states_checked = 0
        self.totals = dict(jobs=0, ok=0, keys=0, values=0, lsb_refetches=0, beats=0,
                           job_cycles=0, **{n: 0 for n in STAGE_COUNTERS + OVERLAP_COUNTERS})
        self._out = None
        if self.cfg.out:
            Path(self.cfg.out).mkdir(parents=True, exist_ok=True)
            self._out = open(Path(self.cfg.out) / "jobs.jsonl", "w", encoding="utf-8")

    # ------------------------------------------------------------------ inputs
    def on_descriptor(self, desc) -> None:
        job, m = desc.job, self.model
        desc.context = {
            # candidates of the token prune: all below n after a clear or a reselect
            "tokens": job.n_tokens if job.clear_tokens or job.reselect
            else int(m.token_kept[:job.n_tokens].sum()),
            "heads": job.n_heads if job.clear_heads else int(m.head_kept[:job.n_heads].sum())}
        ref = self.model.run_job(desc.job, self.memory)
        self.expected.append((desc, ref))

    def on_result(self, res) -> None:
        if not self.expected:
            self.extra += 1
            self._fail(f"result #{res.index} (job_id {res.fields['job_id']}) arrived with no "
                       f"descriptor outstanding", "extra result")
            return
        got_id = res.fields["job_id"]
        ids = [d.job.job_id for d, _ in self.expected]
        if got_id != ids[0] and got_id in ids:
            skipped = ids.index(got_id)
            for _ in range(skipped):
                d, _ = self.expected.popleft()
                self._fail(f"job {d.index} (job_id {d.job.job_id}): result missing (the core "
                           f"returned job_id {got_id} next)", "missing result")
        desc, ref = self.expected.popleft()
        label = desc.item.label if desc.item is not None else f"job {desc.index}"
        errors = []
        for name, want, have in compare_fields(res.fields, ref, self.params):
            msg = (f"job {desc.index} ({label}): field {name}: expected {want}, "
                   f"actual {have}")
            errors.append(msg)
            self._fail(msg, name.split("[")[0].split(" ")[0])
        if desc.item is not None and desc.item.check is not None:
            for e in desc.item.check(ref):
                msg = f"job {desc.index} ({label}): model vs sequence's reference: {e}"
                errors.append(msg)
                self._fail(msg, "sequence check")
        t = self.totals
        t["jobs"] += 1
        t["ok"] += int(ref.status == Status.OK)
        t["keys"] += res.fields["n_keys"]
        t["values"] += res.fields["n_values"]
        t["lsb_refetches"] += res.fields["lsb_fetched"]
        t["beats"] += res.fields["beats"]
        t["job_cycles"] += res.fields["cycles"]
        for name in STAGE_COUNTERS + OVERLAP_COUNTERS:
            t[name] += res.fields[name]
        if self._out is not None:
            meta = desc.item.meta if desc.item is not None else {}
            rec = dict(job=desc.index, label=label, **meta, n_tokens=desc.job.n_tokens,
                       status=res.fields["status"], keys=res.fields["n_keys"],
                       values=res.fields["n_values"], lsb_fetched=res.fields["lsb_fetched"],
                       beats=res.fields["beats"], cycles=res.fields["cycles"],
                       accept_cycle=desc.cycle, result_cycle=res.cycle,
                       result_wait=res.wait_cycles, errors=errors,
                       **{n: res.fields[n] for n in STAGE_COUNTERS + OVERLAP_COUNTERS})
            self._out.write(json.dumps(rec, separators=(",", ":")) + "\n")
            self._out.flush()
        self.records += 1
        self.checked_ap.write((desc, ref, res))

    def on_state(self, snap) -> None:
        self.states_checked += 1
        for heads, imp, kept in ((False, snap.tokens_imp, snap.tokens_kept),
                                 (True, snap.heads_imp, snap.heads_kept)):
            want_imp, want_kept = self.model.state_view(heads, len(imp))
            what = "head" if heads else "token"
            for i in range(len(imp)):
                if imp[i] != want_imp[i] or kept[i] != want_kept[i]:
                    name = "importance" if imp[i] != want_imp[i] else "kept"
                    want = want_imp[i] if name == "importance" else want_kept[i]
                    have = imp[i] if name == "importance" else kept[i]
                    self._fail(f"state after job {snap.after_index}: {what} {i} {name}: "
                               f"expected {want}, actual {have}", f"{what}_{name}")
                    break

    def _fail(self, message: str, field: str) -> None:
        if not self.mismatches:
            self.logger.error("FIRST MISMATCH: %s", message)
        elif len(self.mismatches) < 20:
            self.logger.error("mismatch: %s", message)
        self.mismatches.append(ScoreboardMismatch(message, field))

    # ------------------------------------------------------------------ end of test
    def check_phase(self):
        if self._out is not None:
            self._out.close()
        if self.expected:
            desc, _ = self.expected[0]
            self._fail(f"{len(self.expected)} result(s) missing at the end of the test, the "
                       f"first for job {desc.index}", "missing result")
        self.logger.info("scoreboard: %d jobs checked, %d state snapshots checked, %d "
                         "mismatch(es)", self.records, self.states_checked,
                         len(self.mismatches))
        if self.cfg.inject:  # an expect-fail test: the fault must be caught as itself
            from spatten_dv.verif.fault_injector import CAUGHT_AS

            want = CAUGHT_AS[self.cfg.inject]
            if not self.mismatches:
                raise AssertionError(f"injected fault {self.cfg.inject} was NOT caught")
            if self.mismatches[0].field != want:
                raise AssertionError(f"injected fault {self.cfg.inject} was reported as "
                                     f"{self.mismatches[0].field!r} ({self.mismatches[0]}), "
                                     f"expected {want!r}")
            self.logger.info("injected fault %s caught as %r", self.cfg.inject, want)
        if self.mismatches:
            first = self.mismatches[0]
            raise ScoreboardMismatch(f"{len(self.mismatches)} mismatch(es); first: {first}",
                                     first.field)
