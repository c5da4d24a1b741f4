import torch

from spatten_dv.models import DramImage, Job, score_scale, write_head
from spatten_dv.models.formats import quantize_symmetric


def make_head(seed: int, n: int, d: int = 64, spread: float = 2.0):
    """Realistic-range random q/K/V for one head, quantized to 12 bits."""
    g = torch.Generator().manual_seed(seed)
    q12, sq = quantize_symmetric(torch.randn(d, generator=g))
    k12, sk = quantize_symmetric(torch.randn(n, d, generator=g) * spread)
    v12, _ = quantize_symmetric(torch.randn(n, d, generator=g))
    return q12, k12, v12, sq * sk / d**0.5


def make_job(seed: int, n: int, msb=12, lsb=0, vb=12, **kw):
    """A job plus the DRAM image holding its planes, and the real score scale."""
    q12, k12, v12, scale = make_head(seed, n)
    mem = DramImage()
    bases = write_head(mem, 0x10000, k12, v12, msb, lsb, vb)
    mult, shift = score_scale(scale)
    job = Job(query=q12, n_tokens=n, k_msb_base=bases.k_msb_base, k_lsb_base=bases.k_lsb_base,
              v_base=bases.v_base, msb_bits=msb, lsb_bits=lsb, v_bits=vb, score_mult=mult,
              score_shift=shift, **kw)
    return job, mem, (q12, k12, v12, scale)
