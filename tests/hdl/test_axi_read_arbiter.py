"""spatten_axi_read_arbiter on both simulators (cocotb_axi_read_arbiter.py), two real
spatten_fetchers sharing channels through it (tb_fetcher_pair.v, cocotb_axi_read_arbiter_pair.py),
and the testbench's reference checker shown to catch wrong arbiter behaviour."""

from pathlib import Path

import pytest
from cocotb_axi_read_arbiter import INPUTS, OUTPUTS, ArbiterChecker, word

from spatten_dv.sim import hdl_sources, run_cocotb

# N_CH=1 at the depth the core uses; the other widths with small, odd depths so the order
# FIFOs fill and their pointers wrap at a non-power-of-two.
MAX_OUTSTANDING = {1: 16, 2: 3, 4: 5}


@pytest.mark.parametrize("n_ch", [1, 2, 4])
@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_axi_read_arbiter(simulator, n_ch):
    depth = MAX_OUTSTANDING[n_ch]
    run_cocotb(
        toplevel="spatten_axi_read_arbiter",
        sources=hdl_sources("spatten_axi_read_arbiter"),
        test_module="cocotb_axi_read_arbiter",
        simulator=simulator,
        parameters={"N_CH": n_ch, "MAX_OUTSTANDING": depth},
        extra_env={"ARB_N_CH": str(n_ch), "ARB_MAX_OUTSTANDING": str(depth)},
        test_dir=Path(__file__).parent,
    )


def test_two_fetchers_share_channels():
    # Icarus only: a Verilator build of two fetchers would double this file's time, and the
    # arbiter itself is tested on both simulators above.
    here = Path(__file__).parent
    run_cocotb(
        toplevel="tb_fetcher_pair",
        sources=[*hdl_sources("spatten_fetcher", "spatten_axi_read_arbiter"),
                 here / "tb_fetcher_pair.v"],
        test_module="cocotb_axi_read_arbiter_pair",
        simulator="icarus",
        parameters={"N_CH": 2},
        extra_env={"FETCHER_N_CH": "2"},
        test_dir=here,
    )


# ------------------------------------------------------------------ the checker can fail
# One channel; each trace is a list of cycles, each a dict of the non-zero port values.

A0, A1 = 0x1000, (1 << 31) | 0x2000


def ar(k, addr, length=0):
    return {f"s{k}_arvalid": 1, f"s{k}_araddr": addr, f"s{k}_arlen": length}


def fwd(addr, length=0, ready=1):
    return {"m_axi_arvalid": 1, "m_axi_araddr": addr, "m_axi_arlen": length,
            "m_axi_arready": ready}


def beat(k, data, last=1):
    """An R beat on m_axi delivered to master k (who is ready)."""
    return {"m_axi_rvalid": 1, "m_axi_rdata": data, "m_axi_rlast": last, f"s{k}_rready": 1,
            f"s{k}_rvalid": 1, f"s{k}_rdata": data, f"s{k}_rlast": last, "m_axi_rready": 1}


def run_trace(cycles, max_outstanding=4):
    checker = ArbiterChecker(1, max_outstanding)
    for i, values in enumerate(cycles):
        o = dict.fromkeys(INPUTS + OUTPUTS, 0)
        o.update(values)
        checker.step(o, i)
    return checker


# s1 issues alone and is accepted; its burst's beat comes back to s1.
GOOD = [{**ar(1, A1), **fwd(A1), "s1_arready": 1}, beat(1, word(A1))]


def test_checker_accepts_a_correct_trace():
    assert not run_trace(GOOD).fifo[0]


@pytest.mark.parametrize("bad, message", [
    # the beat of s1's burst goes to s0
    ([GOOD[0], beat(0, word(A1))], "routed"),
    # s1's beat reaches s1 with other data than m_axi carried
    ([GOOD[0], {**beat(1, word(A1)), "s1_rdata": word(A0)}], "differ"),
    # both request a free channel, s1 is forwarded
    ([{**ar(0, A0), **ar(1, A1), **fwd(A1), "s1_arready": 1}], "s0 must be granted"),
    # s1 waits, s0 arrives, the payload switches to s0's under the waiting ARVALID
    ([{**ar(1, A1), **fwd(A1, ready=0)},
      {**ar(1, A1), **ar(0, A0), **fwd(A0), "s0_arready": 1}], "changed while ARVALID"),
    # a granted master does not see arready
    ([{**ar(0, A0), **fwd(A0)}], "arready"),
    # an AR forwarded although the order FIFO is full (depth 1, one burst in flight)
    ([{**ar(0, A0), **fwd(A0), "s0_arready": 1}, {**ar(1, A1), **fwd(A1), "s1_arready": 1}],
     "m_axi_arvalid=1, expected 0"),
    # the arbiter adds a cycle: the request shows on m_axi one cycle late
    ([ar(0, A0), {**ar(0, A0), **fwd(A0), "s0_arready": 1}], "m_axi_arvalid=0, expected 1"),
])
def test_checker_detects_wrong_arbitration(bad, message):
    with pytest.raises(AssertionError, match=message):
        run_trace(bad, max_outstanding=1 if "expected 0" in message else 4)
