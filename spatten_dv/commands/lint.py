"""`spatten-dv lint-hdl`: Verilator -Wall and Icarus -g2005 lint of every module under hdl/.

Each file is linted as its own top with hdl/ as the library path, so a module that only
compiles inside a bigger design, or that is not Verilog-2005, is caught on its own.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from spatten_dv import toolchain
from spatten_dv.errors import UserError
from spatten_dv.sim import HDL_DIR


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("lint-hdl", help="lint hdl/*.v with Verilator -Wall and Icarus")
    parser.add_argument("files", nargs="*", type=Path, help="files to lint (default: hdl/*.v)")
    parser.set_defaults(func=run)


def lint_file(path: Path, hdl_dir: Path = HDL_DIR,
              parameters: dict[str, int] | None = None) -> list[str]:
    """Problems found in one file (empty when clean), its top module built with `parameters`."""
    toolchain.setup_environment()
    problems = []
    top = path.stem
    parameters = parameters or {}
    verilator = [shutil.which("verilator") or "verilator", "--lint-only", "-Wall",
                 "--top-module", top, "-y", str(hdl_dir), str(path)]
    verilator += [f"-G{k}={v}" for k, v in parameters.items()]
    out = subprocess.run(verilator, capture_output=True, text=True, timeout=300)
    if out.returncode or out.stderr.strip():
        problems.append(f"verilator: {path.name} {parameters or ''}\n{out.stderr.strip()}")
    with tempfile.TemporaryDirectory() as tmp:
        icarus = ["iverilog", "-g2005", "-Wall", "-Wno-timescale", "-s", top, "-y", str(hdl_dir),
                  "-o", str(Path(tmp) / "a.out"), str(path)]
        icarus += [f"-P{top}.{k}={v}" for k, v in parameters.items()]
        out = subprocess.run(icarus, capture_output=True, text=True, timeout=300)
        if out.returncode or out.stderr.strip():
            problems.append(f"icarus: {path.name} {parameters or ''}\n{out.stderr.strip()}")
    return problems


def run(args: argparse.Namespace) -> int:
    files = args.files or sorted(HDL_DIR.glob("*.v"))
    missing = [str(f) for f in files if not Path(f).is_file()]
    if missing:
        raise UserError(f"no such file: {', '.join(missing)}")
    if shutil.which("iverilog") is None:
        raise UserError("iverilog not found: apt-get install iverilog")
    problems = [p for f in files for p in lint_file(Path(f))]
    # the top level also at every other named configuration (models/params.py)
    from spatten_dv.models.params import CONFIGURATIONS, verilog_parameters

    core = [Path(f) for f in files if Path(f).name == "spatten_core.v"]
    for name, params in CONFIGURATIONS.items():
        for f in core:
            if verilog_parameters(params):
                found = lint_file(f, parameters=verilog_parameters(params))
                print(f"lint-hdl: {f.name} at configuration {name}: "
                      f"{len(found)} problem(s)")
                problems += found
    for p in problems:
        print(p)
    print(f"lint-hdl: {len(files)} file(s), {len(problems)} problem(s)")
    return 1 if problems else 0
