"""Compare a result taken from spatten_core with the reference model's, field by field.

The core is bit-exact to `SpAttenCoreModel`: every result field except `cycles` must match
(`beats` too, except for jobs ending in an AXI error, where the number of beats the fetcher had
in flight when the error came back depends on bus timing).
"""

from __future__ import annotations

from spatten_dv.models.descriptor import JobResult


def expected_fields(ref: JobResult) -> dict:
    """Every result field the core must return for this model result (all but `cycles`)."""
    return dict(job_id=ref.job_id, status=int(ref.status), lsb_fetched=int(ref.lsb_fetched),
                max_prob_msb=ref.max_prob_msb, max_prob=ref.max_prob, n_keys=ref.n_keys,
                n_values=ref.n_values, beats=ref.beats,
                out=[int(x) for x in ref.out.tolist()])


def compare_result(got: dict, ref: JobResult, check_beats: bool = True) -> list[str]:
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
    return errs
