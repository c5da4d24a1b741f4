"""cocotb tests of spatten_plane_unpack_wide against models/formats.py.

Each stream: random K codes of a plane (every width, signed and unsigned), packed by
`pack_plane` and laid end to end as the dense plane of section 3; a random kept-token subset
(runs from an even or odd token, random gaps); the bus words the fetcher reads for it
(`plane_fetch_words`, so a 6-bit odd token right after its even neighbour shares a word; phase
= word index mod 3) driven in groups of random size 0..IN_BEATS with in_valid gaps and garbage
in the unused lanes, random out_ready. Every output beat must hold the next min(KPC, rest)
tokens in lanes 0.. with out_count and out_last to match, the lanes equal to `unpack_plane` of
the kept tokens' bytes (as 12-bit fields), lanes past the stream's end zero. Streams run back
to back with clear between, some after a cut-short stream of junk. in_ready must not move
with out_ready within a cycle. A second test measures the full-rate throughput.

The geometry comes from the environment (UW_D, UW_AXI, UW_IN_BEATS, UW_KPC: the Verilog
parameters of the build).
"""

import os
import random

import cocotb
import numpy as np
import torch
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, Timer, with_timeout

from spatten_dv.models.formats import pack_plane, unpack_plane
from spatten_dv.models.layout import plane_fetch_words
from spatten_dv.models.params import CoreParams

D = int(os.environ.get("UW_D", "64"))
AXI = int(os.environ.get("UW_AXI", "256"))
IN_BEATS = int(os.environ.get("UW_IN_BEATS", "8"))
KPC = int(os.environ.get("UW_KPC", "8"))
PARAMS = CoreParams(head_dim=D, axi_data_bits=AXI)
BUS_BYTES = AXI // 8
TW = 12 * D  # bits of one output lane
SEED = cocotb.RANDOM_SEED % (1 << 62)
WIDTHS = (4, 6, 8, 12)


class Stream:
    """One plane stream: the beats the fetcher delivers and the output the model expects."""

    def __init__(self, g, rng, width, signed, length, every=False):
        """`every`: tokens 0..length-1 (else a random subset from a random first token)."""
        self.width, self.signed, self.length = width, signed, length
        start = 0 if every else rng.randrange(4)  # even or odd first token
        keep_p = 1.0 if every else rng.choice((1.0, 0.7, 0.3))
        tokens, t = [], start
        while len(tokens) < length:
            if len(tokens) == 0 or rng.random() < keep_p:
                tokens.append(t)
            t += 1
        n_plane = tokens[-1] + 1 + rng.randrange(3)
        if signed:
            codes = torch.randint(-(1 << (width - 1)), 1 << (width - 1), (n_plane, D), generator=g)
        else:
            codes = torch.randint(0, 1 << width, (n_plane, D), generator=g)
        raw = pack_plane(codes, width, PARAMS)
        want = unpack_plane(raw[tokens], width, signed, PARAMS)
        assert torch.equal(want, codes[tokens]), "model: unpack_plane(pack_plane(c)) != c"
        # Output lanes as the model gives them: 12-bit fields, element d at bits [12d, 12d+12).
        self.lanes = pack_plane(want, 12, PARAMS)
        flat = np.asarray(raw, dtype=np.uint8).reshape(-1).tobytes() + bytes(BUS_BYTES)
        self.words, self.phases = [], []
        for w in plane_fetch_words(tokens, width, PARAMS).tolist():
            self.words.append(flat[w * BUS_BYTES:(w + 1) * BUS_BYTES])
            self.phases.append(w % 3 if width == 6 else rng.randrange(4))  # ignored unless 6
        self.tokens = tokens

    def expected_beat(self, b):
        """(count, last, lanes as int) of output beat b."""
        first = b * KPC
        count = min(KPC, self.length - first)
        lanes = int.from_bytes(self.lanes[first:first + count].tobytes(), "little")
        return count, first + count == self.length, lanes


async def reset(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst_n.value = 0
    dut.clear.value = 0
    dut.in_valid.value = 0
    dut.in_count.value = 0
    dut.in_data.value = 0
    dut.in_phase.value = 0
    dut.out_ready.value = 0
    dut.cfg_width.value = 4
    dut.cfg_signed.value = 1
    dut.cfg_total.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst_n.value = 1
    await RisingEdge(dut.clk)


def group_value(rng, words, phases):
    """in_data / in_phase of a group: the given beats on lanes 0.., garbage above."""
    n = len(words)
    data = b"".join(words) + rng.randbytes(BUS_BYTES * (IN_BEATS - n))
    phase = sum(p << (2 * i) for i, p in enumerate(phases))
    phase |= rng.getrandbits(2 * (IN_BEATS - n)) << (2 * n)
    return int.from_bytes(data, "little"), phase


async def clear_and_configure(dut, rng, stream, junk_cycles=0):
    """Optionally drive junk groups (a stream cut short), then clear and set the config."""
    for _ in range(junk_cycles):
        dut.in_valid.value = int(rng.random() < 0.8)
        dut.in_count.value = rng.randrange(IN_BEATS + 1)
        dut.in_data.value = int.from_bytes(rng.randbytes(BUS_BYTES * IN_BEATS), "little")
        dut.in_phase.value = rng.getrandbits(2 * IN_BEATS)
        dut.out_ready.value = int(rng.random() < 0.5)
        await RisingEdge(dut.clk)
    dut.in_valid.value = 0
    dut.out_ready.value = 0
    dut.clear.value = 1
    dut.cfg_width.value = stream.width
    dut.cfg_signed.value = int(stream.signed)
    dut.cfg_total.value = stream.length
    await RisingEdge(dut.clk)
    dut.clear.value = 0


async def run_stream(dut, rng, stream, valid_p, ready_p, full=False):
    """Drive the stream's beats and check every output beat; returns the cycles (relative to
    the first cycle) of each group taken, with its beat count, and of each output beat.
    `full`: every group IN_BEATS beats (but the stream's last)."""
    what = (f"width={stream.width} signed={stream.signed} length={stream.length} "
            f"tokens {stream.tokens[:6]}... valid_p={valid_p} ready_p={ready_p} seed={SEED}")
    i, b, cycle = 0, 0, 0
    group = None  # (beat count, data, phase) offered until taken
    taken, beats_out = [], []
    n_beats_out = (stream.length + KPC - 1) // KPC
    # A bound on the cycles, several times what the slowest mix of valid_p >= 0.3 and
    # ready_p >= 0.4 needs: a lost token fails here instead of running to the time limit.
    limit = 8 * len(stream.words) + 10 * n_beats_out + 200
    while b < n_beats_out:
        assert cycle < limit, f"{what}: {b} of {n_beats_out} output beats after {cycle} cycles"
        if group is None and rng.random() < valid_p and i < len(stream.words):
            if full:
                n = IN_BEATS
            else:
                n = 0 if rng.random() < 0.1 else rng.randint(1, IN_BEATS)
            n = min(n, len(stream.words) - i)
            group = (n, *group_value(rng, stream.words[i:i + n], stream.phases[i:i + n]))
        if group is None:
            dut.in_valid.value = 0
            dut.in_count.value = rng.randrange(IN_BEATS + 1)
            dut.in_data.value, dut.in_phase.value = group_value(rng, [], [])
        else:
            dut.in_valid.value = 1
            dut.in_count.value, dut.in_data.value, dut.in_phase.value = group
        ready = int(rng.random() < ready_p)
        # in_ready from registers only: it must not follow out_ready within the cycle.
        dut.out_ready.value = 1 - ready
        await Timer(1, unit="ns")
        in_ready_other = int(dut.in_ready.value)
        dut.out_ready.value = ready
        await ReadOnly()
        assert int(dut.in_ready.value) == in_ready_other, f"{what}: in_ready follows out_ready"
        if group is not None and int(dut.in_ready.value):
            taken.append((cycle, group[0]))
            i += group[0]
            group = None
        if int(dut.out_valid.value) and ready:
            count, last, lanes = stream.expected_beat(b)
            got_count, got_last = int(dut.out_count.value), int(dut.out_last.value)
            assert (got_count, got_last) == (count, int(last)), \
                f"{what}: beat {b}: out_count/out_last {got_count}/{got_last}, want {count}/{last}"
            got = int(dut.out_codes.value)  # lanes past the stream's end must be zero
            if got != lanes:
                for lane in range(KPC):
                    g_l = (got >> (lane * TW)) & ((1 << TW) - 1)
                    w_l = (lanes >> (lane * TW)) & ((1 << TW) - 1)
                    if g_l != w_l:
                        tok = stream.tokens[b * KPC + lane] if lane < count else "none"
                        fields = [((g_l >> (12 * d)) & 0xFFF, (w_l >> (12 * d)) & 0xFFF)
                                  for d in range(D)]
                        raise AssertionError(f"{what}: beat {b} lane {lane} (token {tok}) "
                                             f"differs: (got, want) per element {fields}")
            beats_out.append(cycle)
            b += 1
        await RisingEdge(dut.clk)
        cycle += 1
    assert i == len(stream.words), f"{what}: {len(stream.words) - i} beats left untaken"
    dut.in_valid.value = 0
    dut.out_ready.value = 1
    for _ in range(2):  # the stream is over: no further output beat
        await ReadOnly()
        assert not int(dut.out_valid.value), f"{what}: out_valid after the last beat"
        await RisingEdge(dut.clk)
    dut.out_ready.value = 0
    return taken, beats_out


def lengths(rng):
    return sorted({1, max(1, KPC - 1), KPC, KPC + 1, rng.randint(2, 300)})


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def unpack_wide_matches_model(dut):
    """Every width and sign, lengths 1, KPC-1, KPC, KPC+1, random and 1024, random groups."""
    rng = random.Random(SEED)
    g = torch.Generator().manual_seed(SEED)
    await reset(dut)
    cases = [(w, s, n) for w in WIDTHS for s in (True, False) for n in lengths(rng)]
    cases += [(w, rng.random() < 0.5, 1024) for w in WIDTHS]
    rng.shuffle(cases)
    for width, signed, length in cases:
        stream = Stream(g, rng, width, signed, length)
        valid_p, ready_p = rng.choice(((1.0, 1.0), (0.6, 0.4), (0.9, 0.8), (0.3, 1.0)))
        junk = rng.randrange(6) if rng.random() < 0.3 else 0
        await clear_and_configure(dut, rng, stream, junk)
        await with_timeout(run_stream(dut, rng, stream, valid_p, ready_p), 20, "ms")


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def unpack_wide_full_rate(dut):
    """Full groups with out_ready high: IN_BEATS beats per cycle at every width (when
    IN_BEATS <= KPC), and at width 4 min(IN_BEATS, KPC) tokens per cycle."""
    rng = random.Random(SEED + 1)
    g = torch.Generator().manual_seed(SEED + 1)
    await reset(dut)
    for width in WIDTHS:
        stream = Stream(g, rng, width, True, 1024, every=True)
        await clear_and_configure(dut, rng, stream)
        taken, beats_out = await with_timeout(
            run_stream(dut, rng, stream, 1.0, 1.0, full=True), 20, "ms")
        full = [c for c, n in taken if n == IN_BEATS]
        in_rate = IN_BEATS * (len(full) - 1) / (full[-1] - full[0])
        tok_rate = KPC * (len(beats_out) - 2) / (beats_out[-2] - beats_out[0])
        dut._log.info("unpack_wide D=%d IN_BEATS=%d KPC=%d width=%d: %d beats in %d cycles: "
                      "%.3f beats/cycle; %d tokens in %d cycles: %.3f tokens/cycle", D,
                      IN_BEATS, KPC, width, len(stream.words), taken[-1][0] - taken[0][0] + 1,
                      in_rate, stream.length, beats_out[-1] - beats_out[0] + 1, tok_rate)
        if IN_BEATS <= KPC:  # else the output (KPC tokens per cycle) is the limit
            assert in_rate == IN_BEATS, f"width={width}: {in_rate} beats/cycle, want {IN_BEATS}"
        if width == 4:
            want = min(IN_BEATS, KPC)
            assert tok_rate == want, f"width 4: {tok_rate} tokens/cycle, want {want}"
