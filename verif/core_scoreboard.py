"""Compare a result taken from spatten_core with the reference model's, field by field.

The core is bit-exact to `SpAttenCoreModel`: every result field except `cycles` and the stage
counters must match (`beats` too, except for jobs ending in an AXI error, where the number of
beats the fetcher had in flight when the error came back depends on bus timing). The stage
counters are cycle figures the model does not predict; `counter_errors` checks that they are
consistent with `cycles` and with the model's counts (docs/architecture.md section 9).
"""

from __future__ import annotations

from spatten_dv.models.descriptor import OVERLAP_COUNTERS, STAGE_COUNTERS, JobResult, Status
from spatten_dv.models.params import DEFAULT_PARAMS, CoreParams

# statuses of a job that stopped before any fetch (no datapath cycle may be counted)
NO_DATAPATH = (Status.HEAD_SKIPPED, Status.NO_TOKENS, Status.TOO_MANY_TOKENS, Status.BAD_WIDTH,
               Status.BAD_ADDR, Status.BAD_HEAD)
# descriptor errors: the job stops at the check, before any prune pass
INVALID = (Status.TOO_MANY_TOKENS, Status.BAD_WIDTH, Status.BAD_ADDR, Status.BAD_HEAD)


def expected_fields(ref: JobResult) -> dict:
    """Every result field the core must return for this model result (all but the cycle figures:
    `cycles` and the stage counters, checked for consistency by `counter_errors`)."""
    return dict(job_id=ref.job_id, status=int(ref.status), lsb_fetched=int(ref.lsb_fetched),
                max_prob_msb=ref.max_prob_msb, max_prob=ref.max_prob, n_keys=ref.n_keys,
                n_values=ref.n_values, beats=ref.beats,
                out=[int(x) for x in ref.out.tolist()])


def compare_result(got: dict, ref: JobResult, check_beats: bool = True,
                   params: CoreParams = DEFAULT_PARAMS) -> list[str]:
    """Differences between a DUT result (CoreDriver.receive) and the model's; empty if none."""
    exp = expected_fields(ref)
    want = exp.pop("out")
    if not check_beats:
        exp.pop("beats")
    errs = [f"{k}: dut {got[k]} model {v}" for k, v in exp.items() if got[k] != v]
    if got["out"] != want:
        bad = [d for d in range(len(want)) if got["out"][d] != want[d]]
        errs.append(f"out differs at {bad[:8]}: dut {[got['out'][d] for d in bad[:4]]} "
                    f"model {[want[d] for d in bad[:4]]}")
    errs += [f"counters: {e}" for e in counter_errors(got, ref, params)]
    return errs


def counter_errors(got: dict, ref: JobResult, params: CoreParams = DEFAULT_PARAMS) -> list[str]:
    """Rules the stage counters of a DUT result must obey (section 9); empty if all hold.

    With KL keys per Q.K beat (QK_MULS / D, at least 1) and VL values per prob.V beat
    (PV_MULS / D):
    * the exclusive counters sum to `cycles`; fetch_stall <= fetch_wait <= fetch_busy <= cycles
    * an OK job: qk = one cycle per Q.K beat and K pass (ceil(n_keys / KL) x (1 +
      lsb_fetched): the beats are aligned, section 11.1), v >= ceil(n_values / VL) (one cycle
      per prob.V beat plus the drain), fetch_busy >= ceil(beats / KL) (a fetcher hands on at
      most KL beats a cycle)
    * a job that fetched nothing (HEAD_SKIPPED, NO_TOKENS, descriptor errors): every datapath
      counter is zero; a descriptor error also did no top-k work
    """
    c = {name: got[name] for name in STAGE_COUNTERS + OVERLAP_COUNTERS}
    errs = []
    total = sum(c[name] for name in STAGE_COUNTERS)
    if total != got["cycles"]:
        errs.append(f"exclusive stage counters sum to {total}, cycles is {got['cycles']}")
    if not c["cyc_fetch_stall"] <= c["cyc_fetch_wait"] <= c["cyc_fetch_busy"] <= got["cycles"]:
        errs.append(f"fetch_stall {c['cyc_fetch_stall']} <= fetch_wait {c['cyc_fetch_wait']} "
                    f"<= fetch_busy {c['cyc_fetch_busy']} <= cycles {got['cycles']} fails")
    if ref.status == Status.OK:
        kl = max(1, params.qk_multipliers // params.head_dim)
        vl = max(1, params.pv_multipliers // params.head_dim)
        want_qk = -(-ref.n_keys // kl) * (1 + int(ref.lsb_fetched))
        if c["cyc_qk"] != want_qk:
            errs.append(f"cyc_qk {c['cyc_qk']}, expected {want_qk} (one per Q.K beat of {kl} "
                        "key(s) and K pass)")
        if c["cyc_v"] < -(-ref.n_values // vl):
            errs.append(f"cyc_v {c['cyc_v']} < prob.V beats {-(-ref.n_values // vl)}")
        if c["cyc_fetch_busy"] < -(-ref.beats // kl):
            errs.append(f"cyc_fetch_busy {c['cyc_fetch_busy']} < {-(-ref.beats // kl)} "
                        f"(beats {ref.beats}, at most {kl} a cycle)")
    elif ref.status in NO_DATAPATH:
        busy = [n for n in ("cyc_fetch_wait", "cyc_qk", "cyc_softmax", "cyc_v",
                            "cyc_fetch_busy", "cyc_fetch_stall") if c[n]]
        if ref.status in INVALID and c["cyc_topk"]:
            busy.append("cyc_topk")
        if busy:
            errs.append(f"{ref.status.name} job counted datapath cycles: "
                        + ", ".join(f"{n} {c[n]}" for n in busy))
    return errs
