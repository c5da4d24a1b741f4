"""Pin access to spatten_core's descriptor and result streams (the only code touching them).

`CoreDriver.run(job)` sends a packed descriptor (valid/ready handshake), waits for the result
(with a timeout: a hung core is a test failure, never a hang) and returns its fields unpacked
by `result_fields()`, plus `out` as signed integers. Handshakes are sampled in ReadOnly before
the clock edge and driven after it.
"""

from __future__ import annotations

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout

from spatten_dv.models.descriptor import Job, result_fields, unpack_fields
from spatten_dv.models.params import DEFAULT_PARAMS, OUT_BITS, CoreParams


class CoreDriver:
    def __init__(self, dut, params: CoreParams = DEFAULT_PARAMS, timeout_ns: int = 2_000_000):
        self.dut = dut
        self.params = params
        self.timeout_ns = timeout_ns
        self.layout = result_fields(params)

    async def start(self, period_ps: int) -> None:
        """Start the clock, hold reset for 3 cycles, release it."""
        dut = self.dut
        cocotb.start_soon(Clock(dut.clk, period_ps, unit="ps").start())
        dut.rst_n.value = 0
        dut.desc_valid.value = 0
        dut.desc_data.value = 0
        dut.res_ready.value = 0
        dut.dbg_req.value = 0
        dut.dbg_heads.value = 0
        dut.dbg_n.value = 0
        dut.dbg_ready.value = 0
        for _ in range(3):
            await RisingEdge(dut.clk)
        dut.rst_n.value = 1
        await RisingEdge(dut.clk)

    async def send(self, job: Job) -> None:
        dut = self.dut
        dut.desc_data.value = job.pack()
        dut.desc_valid.value = 1
        while True:
            await ReadOnly()
            taken = int(dut.desc_ready.value)
            await RisingEdge(dut.clk)
            if taken:
                break
        dut.desc_valid.value = 0

    async def receive(self, res_delay: int = 0) -> dict:
        """Wait for res_valid, hold res_ready low for `res_delay` cycles, take the result."""
        dut = self.dut

        async def wait_valid():
            while True:
                await ReadOnly()
                if int(dut.res_valid.value):
                    return
                await RisingEdge(dut.clk)

        await with_timeout(wait_valid(), self.timeout_ns, "ns")
        await RisingEdge(dut.clk)
        for _ in range(res_delay):
            await ReadOnly()
            assert int(dut.res_valid.value), "res_valid dropped before res_ready"
            await RisingEdge(dut.clk)
        dut.res_ready.value = 1
        await ReadOnly()
        got = unpack_fields(int(dut.res_data.value), self.layout)
        await RisingEdge(dut.clk)
        dut.res_ready.value = 0
        half, full = 1 << (OUT_BITS - 1), 1 << OUT_BITS
        words = [(got["out"] >> (OUT_BITS * d)) & (full - 1)
                 for d in range(self.params.head_dim)]
        got["out"] = [w - full if w >= half else w for w in words]
        return got

    async def run(self, job: Job, res_delay: int = 0) -> dict:
        await self.send(job)
        return await self.receive(res_delay)
