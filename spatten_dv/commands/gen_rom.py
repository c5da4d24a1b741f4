"""`spatten-dv gen-rom`: regenerate hdl/spatten_exp2_lut.v from the reference model's table."""

from __future__ import annotations

import argparse
from pathlib import Path

from spatten_dv.sim import HDL_DIR


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("gen-rom", help="write the softmax exp2 LUT ROM as Verilog")
    parser.add_argument("--out", type=Path, default=HDL_DIR / "spatten_exp2_lut.v")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spatten_dv.models.exp2 import verilog_rom

    args.out.write_text(verilog_rom())
    print(f"wrote {args.out}")
    return 0
