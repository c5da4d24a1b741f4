import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from spatten_dv.models.formats import (
    combine,
    effective,
    lsb_code,
    msb_code,
    pack_plane,
    reconstruct,
    unpack_plane,
)
from spatten_dv.models.memory import DramImage
from spatten_dv.models.params import DEFAULT_PARAMS

ints12 = st.lists(st.integers(-2048, 2047), min_size=64, max_size=64)


@pytest.mark.parametrize("width,nbytes", [(4, 32), (6, 48), (8, 64), (12, 96)])
def test_token_bytes(width, nbytes):
    assert DEFAULT_PARAMS.token_bytes(width) == nbytes


def test_pack_by_hand():
    codes = torch.zeros(1, 64, dtype=torch.int64)
    codes[0, 0], codes[0, 1], codes[0, 63] = 0x5, -1, 0x3
    raw = pack_plane(codes, 4)
    assert raw.shape == (1, 32)
    assert raw[0, 0] == 0xF5  # element 0 in bits 3:0, element 1 (-1 -> 0xF) in bits 7:4
    assert raw[0, 31] == 0x30  # element 63 in the top nibble of byte 31
    codes12 = torch.zeros(1, 64, dtype=torch.int64)
    codes12[0, 1] = 0xABC - 4096  # element 1 occupies bits 23:12
    raw12 = pack_plane(codes12, 12)
    assert raw12[0, 1] == 0xC0 and raw12[0, 2] == 0xAB


@given(st.lists(ints12, min_size=1, max_size=4), st.sampled_from([4, 6, 8, 12]))
def test_pack_unpack_roundtrip(rows, width):
    x = torch.tensor(rows)
    codes = msb_code(x, width)
    raw = pack_plane(codes, width)
    assert torch.equal(unpack_plane(raw, width, signed=True), codes)


@given(ints12, st.sampled_from([(4, 4), (4, 8), (6, 4), (6, 6), (8, 4)]))
def test_msb_lsb_combine_is_truncation_to_more_bits(row, widths):
    m, lsb = widths
    x = torch.tensor(row)
    full = combine(msb_code(x, m), lsb_code(x, m, lsb), lsb)
    assert torch.equal(full, msb_code(x, m + lsb))
    # Reconstruction error is at most half the dropped range, and zero at 12 bits.
    half = (1 << (12 - m - lsb)) // 2
    assert int((reconstruct(full, m + lsb) - x).abs().max()) <= half
    assert torch.equal(effective(x, 12), x)


def test_midpoint_reconstruction_by_hand():
    x = torch.tensor([1000, -1000, 2047, -2048])
    # 4-bit MSB: steps of 256, midpoint +128.
    assert effective(x, 4).tolist() == [896, -896, 1920, -1920]


def test_dram_image_gather_and_errors():
    mem = DramImage()
    mem.write(0x100, bytes(range(64)))
    mem.write(0x120, b"\xff" * 8)  # overwrite inside the region
    mem.write(0x1000, b"\x01\x02")  # separate region
    got = mem.gather(np.array([0x100, 0x11C, 0xFFF]), 4)
    assert got[0].tolist() == [0, 1, 2, 3]
    assert got[1].tolist() == [28, 29, 30, 31]
    assert got[2].tolist() == [0, 1, 2, 0]  # straddles into the second region
    mem.add_error_range(0x2000, 0x2040)
    assert mem.error_for(np.array([0x1FE0]), 32) == 0
    assert mem.error_for(np.array([0x1FF0]), 32) == 2
