"""cocotb tests of spatten_plane_unpack and spatten_reconstruct against models/formats.py.

Unpacker: the bytes of each plane come from `pack_plane` of random 12-bit K rows (plus corner
rows), laid end to end as the dense plane of section 3; the bus words the fetcher reads for a
set of tokens (every token, and random subsets starting on an odd token: 6-bit tokens start
mid-word and share words) are driven as 256-bit beats with their word phase, random valid gaps
and out_ready back-pressure, and the code vectors must equal `unpack_plane` of the tokens'
bytes (and the codes packed). Reconstruct:
MSB/LSB codes of the same rows (through pack_plane/unpack_plane) must give
`reconstruct(combine(msb, lsb))`, which is also checked to be `effective(k, p)`.

UNPACK_CASES scales the number of random tokens per plane (default 1).
"""

import os
import random

import cocotb
import numpy as np
import torch
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, Timer, with_timeout

from spatten_dv.models.formats import (
    QKV_MAX,
    QKV_MIN,
    combine,
    effective,
    lsb_code,
    msb_code,
    pack_plane,
    reconstruct,
    unpack_plane,
)
from spatten_dv.models.layout import plane_fetch_words, token_words
from spatten_dv.models.params import DEFAULT_PARAMS

D = DEFAULT_PARAMS.head_dim
BUS_BYTES = DEFAULT_PARAMS.axi_data_bits // 8
SCALE = int(os.environ.get("UNPACK_CASES", "1"))
SEED = cocotb.RANDOM_SEED % (1 << 62)
MERGES = [(4, 4), (4, 8), (6, 4), (6, 6), (8, 4)]


def k_rows(g, n_random):
    """Corner rows (extremes, alternating, zero, -1) followed by n_random random rows."""
    corners = [
        torch.full((D,), QKV_MIN),
        torch.full((D,), QKV_MAX),
        torch.tensor([QKV_MIN, QKV_MAX] * (D // 2)),
        torch.zeros(D, dtype=torch.int64),
        torch.full((D,), -1),
        torch.arange(D) * 64 - 2048,  # one of every top-6-bit code
    ]
    rand = torch.randint(QKV_MIN, QKV_MAX + 1, (n_random, D), generator=g)
    return torch.cat([torch.stack(corners).to(torch.int64), rand])


def pack12(values, mask=0xFFF):
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & mask) << (12 * i)
    return word


def unpack12(word, signed):
    out = []
    for i in range(D):
        v = (word >> (12 * i)) & 0xFFF
        out.append(v - 4096 if signed and v >> 11 else v)
    return out


def plane_beats(raw, width, tokens=None):
    """The beats the fetcher delivers for `tokens` (ascending; default all) of the dense plane
    of `raw` ((n, token bytes) from pack_plane): (word as int in AXI lane order, word phase =
    index mod 3 for 6-bit planes else 0, final beat of a token, final beat of the last token)."""
    raw = np.asarray(raw, dtype=np.uint8)
    tokens = list(range(raw.shape[0])) if tokens is None else list(tokens)
    flat = raw.reshape(-1).tobytes() + bytes(BUS_BYTES)  # the last word may run past the plane
    _, last = token_words(tokens, width)
    finals = set(last.tolist())
    out = []
    for w in plane_fetch_words(tokens, width).tolist():
        word = int.from_bytes(flat[w * BUS_BYTES:(w + 1) * BUS_BYTES], "little")
        out.append((word, w % 3 if width == 6 else 0, w in finals, w == int(last[-1])))
    return out


def token_sets(rng, n):
    """Every token; a random subset starting on an odd token (runs, isolated tokens)."""
    subset = [t for t in range(1, n) if t == 1 or rng.random() < 0.6]
    return [list(range(n)), subset]


async def reset(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst_n.value = 0
    dut.clear.value = 0
    dut.in_valid.value = 0
    dut.in_data.value = 0
    dut.in_last.value = 0
    dut.in_phase.value = 0
    dut.out_ready.value = 0
    dut.cfg_width.value = 4
    dut.cfg_signed.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst_n.value = 1


async def stream_plane(dut, rng, beats, valid_p, ready_p):
    """Drive every beat (plane_beats), collect one output per token.

    Returns (codes words, last flags, cycle of each accepted beat). Garbage is driven on
    in_data, in_phase and in_last while in_valid is low, and in_last is random on beats that
    do not end a token.
    """
    n_tokens = sum(1 for b in beats if b[2])
    i, cycle = 0, 0
    outs, lasts, accepted = [], [], []
    while len(outs) < n_tokens:
        send = i < len(beats) and rng.random() < valid_p
        dut.in_valid.value = int(send)
        if send:
            word, phase, final, last_token = beats[i]
            dut.in_data.value = word
            dut.in_phase.value = phase
            dut.in_last.value = int(last_token) if final else rng.getrandbits(1)
        else:
            dut.in_data.value = rng.getrandbits(8 * BUS_BYTES)
            dut.in_phase.value = rng.randrange(3)
            dut.in_last.value = rng.getrandbits(1)
        dut.out_ready.value = int(rng.random() < ready_p)
        await ReadOnly()
        if send and int(dut.in_ready.value):
            accepted.append(cycle)
            i += 1
        if int(dut.out_valid.value) and int(dut.out_ready.value):
            outs.append(int(dut.out_codes.value))
            lasts.append(int(dut.out_last.value))
        await RisingEdge(dut.clk)
        cycle += 1
    dut.in_valid.value = 0
    dut.out_ready.value = 0
    return outs, lasts, accepted


def plane_case(g, width, signed, n_random):
    """(k rows, codes, packed bytes, msb width used for an LSB plane)."""
    k = k_rows(g, n_random)
    if signed:
        msb_w, codes = width, msb_code(k, width)
    else:
        legal = [m for m in (4, 6, 8) if m + width <= 12]
        msb_w = legal[int(torch.randint(0, len(legal), (1,), generator=g))]
        codes = lsb_code(k, msb_w, width)
    return k, codes, pack_plane(codes, width), msb_w


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def unpack_matches_model(dut):
    """Every plane width, signed and LSB planes, valid gaps and back-pressure."""
    rng = random.Random(SEED)
    g = torch.Generator().manual_seed(SEED)
    await reset(dut)
    configs = [(w, True) for w in (4, 6, 8, 12)] + [(w, False) for w in (4, 6, 8)]
    for width, signed in configs:
        for valid_p, ready_p in ((1.0, 1.0), (0.6, 0.4), (0.9, 0.8)):
            _, codes, raw, msb_w = plane_case(g, width, signed, 30 * SCALE)
            every = unpack_plane(raw, width, signed)
            assert torch.equal(every, codes), "model: unpack_plane(pack_plane(c)) != c"
            dut.cfg_width.value = width
            dut.cfg_signed.value = int(signed)
            for tokens in token_sets(rng, codes.shape[0]):
                want = every[tokens]
                await RisingEdge(dut.clk)
                outs, lasts, _ = await with_timeout(stream_plane(
                    dut, rng, plane_beats(raw, width, tokens), valid_p, ready_p), 2, "ms")
                what = (f"width={width} signed={signed} msb_w={msb_w} valid_p={valid_p} "
                        f"ready_p={ready_p} tokens {tokens[:6]}... seed={SEED}")
                assert len(outs) == len(tokens), f"{what}: {len(outs)} tokens out"
                for t, word in enumerate(outs):
                    got = unpack12(word, signed)
                    assert got == want[t].tolist(), f"{what}: token {tokens[t]} codes " \
                        f"differ\ngot  {got}\nwant {want[t].tolist()}"
                assert lasts == [0] * (len(outs) - 1) + [1], f"{what}: out_last {lasts}"


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def unpack_full_rate_and_clear(dut):
    """One beat per cycle with ready high, one-cycle latency, and clear drops a partial token."""
    rng = random.Random(SEED + 1)
    g = torch.Generator().manual_seed(SEED + 1)
    await reset(dut)
    for width in (4, 6, 12):
        _, codes, raw, _ = plane_case(g, width, True, 64)
        dut.cfg_width.value = width
        dut.cfg_signed.value = 1
        await RisingEdge(dut.clk)
        beats = plane_beats(raw, width)
        outs, _, accepted = await stream_plane(dut, rng, beats, 1.0, 1.0)
        n_beats = len(beats)
        rate = (n_beats - 1) / (accepted[-1] - accepted[0])
        dut._log.info("unpack width=%d: %d beats in %d cycles: %.3f beats/cycle", width,
                      n_beats, accepted[-1] - accepted[0] + 1, rate)
        assert rate == 1.0, f"width={width}: {rate} beats/cycle, want 1.0"
        assert [unpack12(w, True) for w in outs] == codes.tolist()
    # Latency: final beat accepted at edge n -> out_valid right after edge n.
    dut.cfg_width.value = 8
    await RisingEdge(dut.clk)
    _, codes, raw, _ = plane_case(g, 8, True, 1)
    tok = plane_beats(raw, 8, [codes.shape[0] - 1])
    dut.out_ready.value = 1
    for w, phase, final, _ in tok:
        dut.in_valid.value = 1
        dut.in_data.value = w
        dut.in_phase.value = phase
        dut.in_last.value = int(final)
        await ReadOnly()
        assert int(dut.in_ready.value) == 1
        await RisingEdge(dut.clk)
    dut.in_valid.value = 0
    await ReadOnly()
    assert int(dut.out_valid.value) == 1, "out_valid not set one edge after the final beat"
    assert unpack12(int(dut.out_codes.value), True) == codes[-1].tolist()
    await RisingEdge(dut.clk)
    # clear: one beat of a 3-beat token, then clear, then a full plane must decode correctly.
    dut.cfg_width.value = 12
    dut.in_valid.value = 1
    dut.in_data.value = rng.getrandbits(256)
    await RisingEdge(dut.clk)
    dut.in_valid.value = 0
    dut.clear.value = 1
    await RisingEdge(dut.clk)
    dut.clear.value = 0
    _, codes, raw, _ = plane_case(g, 12, True, 3)
    outs, _, _ = await stream_plane(dut, rng, plane_beats(raw, 12), 0.7, 0.7)
    assert [unpack12(w, True) for w in outs] == codes.tolist(), "wrong codes after clear"


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def reconstruct_matches_model(dut):
    """x_eff from MSB codes alone and from MSB+LSB codes (DUT: spatten_reconstruct)."""
    rng = random.Random(SEED + 2)
    g = torch.Generator().manual_seed(SEED + 2)
    configs = [(m, 0) for m in (4, 6, 8, 12)] + MERGES
    for msb_w, lsb_w in configs:
        k = k_rows(g, 30 * SCALE)
        # The codes as the planes deliver them: through the DRAM packing and back.
        msb = unpack_plane(pack_plane(msb_code(k, msb_w), msb_w), msb_w, True)
        if lsb_w:
            lsb = unpack_plane(pack_plane(lsb_code(k, msb_w, lsb_w), lsb_w), lsb_w, False)
            want = reconstruct(combine(msb, lsb, lsb_w), msb_w + lsb_w)
        else:
            lsb = None
            want = reconstruct(msb, msb_w)
        assert torch.equal(want, effective(k, msb_w + lsb_w)), "model: combine/effective"
        dut.msb_bits.value = msb_w
        dut.lsb_bits.value = lsb_w
        for t in range(k.shape[0]):
            # Odd rows: garbage above the code widths (the block must use the low bits only).
            junk = t % 2 == 1
            msb_word = pack12(msb[t].tolist())
            if junk:
                msb_word = pack12([(c & ((1 << msb_w) - 1)) | (rng.getrandbits(12) << msb_w)
                                   for c in msb[t].tolist()])
            if lsb is None:
                lsb_word = rng.getrandbits(12 * D)
            elif junk:
                lsb_word = pack12([c | (rng.getrandbits(12) << lsb_w) for c in lsb[t].tolist()])
            else:
                lsb_word = pack12(lsb[t].tolist())
            dut.msb_codes.value = msb_word
            dut.lsb_codes.value = lsb_word
            await Timer(1, unit="ns")
            got = unpack12(int(dut.x_eff.value), True)
            assert got == want[t].tolist(), \
                f"msb={msb_w} lsb={lsb_w} row {t} (junk={junk}): x_eff differs\n" \
                f"got  {got}\nwant {want[t].tolist()}"
