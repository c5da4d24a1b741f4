"""cocotb test of spatten_exp2 against the reference exp2 (every exponent up to 2^13)."""

import cocotb
import torch
from cocotb.triggers import Timer

from spatten_dv.models.exp2 import exp2_neg


@cocotb.test()
async def exp2_matches_reference_on_every_exponent(dut):
    exponents = torch.arange(0, 1 << 13, dtype=torch.int64)
    expected = exp2_neg(exponents).tolist()
    mismatches = []
    for e, want in zip(exponents.tolist(), expected, strict=True):
        dut.exponent.value = e
        await Timer(1, unit="ns")
        got = int(dut.value.value)
        if got != want:
            mismatches.append((e, got, want))
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:5]}"
