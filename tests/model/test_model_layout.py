"""Dense plane layout (docs/architecture.md section 3): token bytes, fetched words, plane size."""

import numpy as np
import pytest
import torch

from spatten_dv.models.formats import msb_code, pack_plane, unpack_plane
from spatten_dv.models.layout import (
    plane_bytes,
    plane_fetch_beats,
    plane_fetch_words,
    write_head,
)
from spatten_dv.models.memory import DramImage
from spatten_dv.models.params import DEFAULT_PARAMS


def words_by_bytes(tokens, width):
    """Brute force: every 32-byte word holding a byte of one of the tokens."""
    tb = DEFAULT_PARAMS.token_bytes(width)
    return sorted({b // 32 for t in tokens for b in range(t * tb, (t + 1) * tb)})


@pytest.mark.parametrize("tokens,beats", [([0], 2), ([1], 2), ([0, 1], 3), ([1, 2], 4),
                                          ([0, 1, 2, 3], 6), ([0, 2], 4), ([0, 1, 3], 5)])
def test_six_bit_pairs_share_a_word(tokens, beats):
    assert plane_fetch_beats(tokens, 6) == beats
    assert plane_fetch_words(tokens, 6).tolist() == words_by_bytes(tokens, 6)


@pytest.mark.parametrize("width", [4, 6, 8, 12])
def test_fetch_words_match_the_bytes_of_random_token_sets(width):
    rng = np.random.default_rng(width)
    for keep in (0.1, 0.5, 0.9, 1.0):
        tokens = np.nonzero(rng.random(300) < keep)[0]
        words = words_by_bytes(tokens.tolist(), width)
        assert plane_fetch_words(tokens, width).tolist() == words
        assert plane_fetch_beats(tokens, width) == len(words)
        if width != 6:  # whole-word tokens: unchanged from the padded layout
            assert len(words) == len(tokens) * DEFAULT_PARAMS.token_bytes(width) // 32
    assert plane_fetch_beats([], width) == 0


def test_plane_is_dense_and_round_trips():
    gen = torch.Generator().manual_seed(1)
    k = torch.randint(-2048, 2048, (7, 64), generator=gen)
    mem = DramImage()
    pb = write_head(mem, 0x1000, k, k, 6, 4, 6)
    assert pb.k_lsb_base - pb.k_msb_base == 4096 and plane_bytes(7, 6) == 352  # 336 B -> 11 words
    raw = np.frombuffer(mem.read(pb.k_msb_base, 7 * 48), dtype=np.uint8).reshape(7, 48)
    assert torch.equal(unpack_plane(raw, 6, True), msb_code(k, 6))
    assert pack_plane(msb_code(k, 6), 6).shape == (7, 48)
