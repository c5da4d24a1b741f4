"""Pin access to spatten_core's state readback port (docs/architecture.md section 10; the only
code touching the dbg_* pins).

`StateReadbackBfm.read(heads, n)` requests a readback of entries 0..n-1 of the token state
(heads = False) or the head state (heads = True) and returns (importance, kept as 0/1). Call it
only while the core is idle (between jobs: after the result was taken, before the next
descriptor; a descriptor already offered on desc_valid waits, the readback goes first).

The host samples once per chunk of 32 entries, not once per clock: it waits on the rising edge
of dbg_valid (after checking in ReadOnly whether it is already high), samples the chunk in
ReadOnly and takes it in one handshake cycle (dbg_ready is held high in advance). With
`ready_delay` > 0 each chunk is instead left waiting that many cycles with dbg_ready low, and the
BFM checks that the chunk is held stable meanwhile. Checks made on every chunk: chunk count
(max(1, ceil(n'/32)), n' the clamped n), dbg_last only on the final chunk, entries at or past n'
read as 0, desc_ready = 0 during the readback. Every wait has a timeout; a timeout raises an
AssertionError naming what was awaited.
"""

from __future__ import annotations

from cocotb.simtime import get_sim_time
from cocotb.triggers import ReadOnly, RisingEdge, SimTimeoutError, with_timeout

from spatten_dv.models.params import DEFAULT_PARAMS, CoreParams

CHUNK = 32  # entries per chunk
IMP_BITS = 32


class StateReadbackBfm:
    def __init__(self, dut, params: CoreParams = DEFAULT_PARAMS, timeout_ns: int = 200_000):
        self.dut = dut
        self.params = params
        self.timeout_ns = timeout_ns
        self.last_cycles = 0  # clock cycles of the last read: request edge .. last handshake
        self.last_chunks = 0

    def idle_inputs(self) -> None:
        """Drive every readback input to 0 (call right after reset starts)."""
        dut = self.dut
        dut.dbg_req.value = 0
        dut.dbg_heads.value = 0
        dut.dbg_n.value = 0
        dut.dbg_ready.value = 0

    def entries(self, heads: bool, n: int) -> int:
        """Entries a readback of n returns (n clamped to H_MAX / L_MAX)."""
        limit = self.params.max_heads if heads else self.params.max_tokens
        return max(0, min(n, limit))

    async def _wait(self, trigger, what: str):
        try:
            return await with_timeout(trigger, self.timeout_ns, "ns")
        except SimTimeoutError:
            raise AssertionError(f"state readback: timed out after {self.timeout_ns} ns "
                                 f"waiting for {what}") from None

    async def _valid(self, what: str) -> None:
        """Return in ReadOnly of a cycle where dbg_valid = 1."""
        dut = self.dut
        await ReadOnly()
        if not int(dut.dbg_valid.value):
            await self._wait(RisingEdge(dut.dbg_valid), what)
            await ReadOnly()

    def _sample(self) -> tuple[int, int, int]:
        dut = self.dut
        assert not int(dut.desc_ready.value), "state readback: desc_ready = 1 during a readback"
        return int(dut.dbg_imp.value), int(dut.dbg_kept.value), int(dut.dbg_last.value)

    async def read(self, heads: bool, n: int,
                   ready_delay: int = 0) -> tuple[list[int], list[int]]:
        dut = self.dut
        period_ps = None
        count = self.entries(heads, n)
        n_chunks = max(1, -(-count // CHUNK))
        dut.dbg_heads.value = int(bool(heads))
        dut.dbg_n.value = n
        dut.dbg_req.value = 1
        dut.dbg_ready.value = 1 if ready_delay == 0 else 0
        await self._wait(RisingEdge(dut.clk), "clk")  # the edge that sees dbg_req
        t0 = get_sim_time("ps")
        imp: list[int] = []
        kept: list[int] = []
        mask = (1 << IMP_BITS) - 1
        for c in range(n_chunks):
            what = f"dbg_valid (chunk {c} of {n_chunks}, heads={int(bool(heads))}, n={n})"
            await self._valid(what)
            chunk = self._sample()
            if ready_delay:
                for _ in range(ready_delay):
                    await self._wait(RisingEdge(dut.clk), "clk")
                    await ReadOnly()
                    assert int(dut.dbg_valid.value), "state readback: dbg_valid dropped " \
                        "while dbg_ready = 0"
                    assert self._sample() == chunk, "state readback: chunk changed while " \
                        "dbg_valid && !dbg_ready"
                await self._wait(RisingEdge(dut.clk), "clk")
                dut.dbg_ready.value = 1
                await ReadOnly()
                assert self._sample() == chunk, "state readback: chunk changed while waiting"
            t_hs = get_sim_time("ps")
            await self._wait(RisingEdge(dut.clk), "clk")  # the handshake edge
            if period_ps is None:
                period_ps = get_sim_time("ps") - t_hs
            if ready_delay:
                dut.dbg_ready.value = 0
            words, bits, last = chunk
            assert last == (c == n_chunks - 1), \
                f"state readback: dbg_last = {last} on chunk {c} of {n_chunks}"
            for i in range(CHUNK):
                e = c * CHUNK + i
                v, k = (words >> (IMP_BITS * i)) & mask, (bits >> i) & 1
                if e < count:
                    imp.append(v)
                    kept.append(k)
                else:
                    assert v == 0 and k == 0, \
                        f"state readback: entry {e} past n = {count} reads {v}/{k}, not 0"
        t1 = get_sim_time("ps")
        dut.dbg_req.value = 0
        dut.dbg_ready.value = 0
        self.last_chunks = n_chunks
        self.last_cycles = round((t1 - t0) / period_ps) + 1
        # the core waits for dbg_req low before it returns to IDLE: let it see one edge (after
        # it the core is in IDLE and takes a descriptor or a new request at the next edge)
        await self._wait(RisingEdge(dut.clk), "clk")
        return imp, kept


def compare_state(got: tuple[list[int], list[int]], ref: tuple[list[int], list[int]],
                  what: str = "") -> list[str]:
    """Differences between a readback (importance, kept) and SpAttenCoreModel.state_view's;
    empty if none."""
    errs = []
    for name, g, r in (("importance", got[0], ref[0]), ("kept", got[1], ref[1])):
        if len(g) != len(r):
            errs.append(f"{what} {name}: {len(g)} entries read, model has {len(r)}")
            continue
        bad = [i for i in range(len(r)) if g[i] != r[i]]
        if bad:
            errs.append(f"{what} {name} differs at {len(bad)} entries {bad[:6]}: dut "
                        f"{[g[i] for i in bad[:4]]} model {[r[i] for i in bad[:4]]}")
    return errs
