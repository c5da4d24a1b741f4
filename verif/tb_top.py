"""Which toplevel the environment's simulations build: the core alone, or the testbench top
`spatten_core_tb` (verif/hdl/) whose HDL FIFOs play out the AXI R beats.

The environment adapts to whichever it finds (`AxiReadPort.playout`); the cycle counts are the
same (docs/verification.md). `spatten_dv.regress.run_one` builds `core_toplevel(playout())`.
"""

from __future__ import annotations

import os
from pathlib import Path

# The default toplevel of environment runs; SPATTEN_PLAYOUT=1 / 0 overrides it per process.
PLAYOUT_DEFAULT = True

TB_HDL_DIR = Path(__file__).resolve().parent / "hdl"
PLAYOUT_TOPLEVEL = "spatten_core_tb"
PLAYOUT_MODULES = ("spatten_core_tb", "axi_r_playout")


def core_toplevel(playout: bool, hdl_dir: Path | None = None) -> tuple[str, list[Path]]:
    """(toplevel, sources) of the environment's DUT; `hdl_dir` holds the core (e.g. a
    mutant's), the testbench top always comes from verif/hdl/."""
    from spatten_dv.sim import CORE_MODULES, hdl_sources

    sources = hdl_sources(*CORE_MODULES, hdl_dir=hdl_dir)
    if not playout:
        return "spatten_core", sources
    return PLAYOUT_TOPLEVEL, hdl_sources(*PLAYOUT_MODULES, hdl_dir=TB_HDL_DIR) + sources


def playout() -> bool:
    """Whether environment runs build the playout testbench top (SPATTEN_PLAYOUT overrides
    PLAYOUT_DEFAULT)."""
    value = os.environ.get("SPATTEN_PLAYOUT", "").strip()
    if value in ("", None):
        return PLAYOUT_DEFAULT
    return value not in ("0", "false", "no", "off")
