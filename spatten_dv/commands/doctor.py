"""`spatten-dv doctor`: report every tool the harness needs and what to do about gaps."""

from __future__ import annotations

import argparse

from spatten_dv import toolchain


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("doctor", help="check the simulators and Python packages")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    statuses = toolchain.check_all()
    width = max(len(s.name) for s in statuses)
    for s in statuses:
        mark = "ok " if s.ok else "MISSING" if s.version == "-" else "BAD"
        print(f"{s.name:<{width}}  {mark:<7}  {s.version:<24}  {s.where}")
        if s.advice:
            print(f"{'':<{width}}  -> {s.advice}")
    missing = [s.name for s in statuses if not s.ok]
    if missing:
        print(f"\n{len(missing)} problem(s): {', '.join(missing)}")
        return 1
    print("\nall tools found")
    return 0
