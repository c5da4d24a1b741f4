"""The `spatten-dv` console entry point.

Each subcommand lives in its own module under `spatten_dv.commands` and exposes
`register(subparsers)`, which adds its parser and sets `func` to a callable taking the parsed
arguments and returning an exit code. User mistakes are reported as `UserError` and printed as
one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from spatten_dv import __version__
from spatten_dv.errors import UserError

# Module names under spatten_dv.commands, in the order `--help` lists them.
COMMAND_MODULES = ("doctor", "lint", "gen_rom", "trace", "capture", "workload", "sim",
                   "coverage", "mutate", "chat", "accuracy", "dram", "synth", "bench", "perf")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spatten-dv",
        description="Verification harness for a hand-written SpAtten core.",
    )
    parser.add_argument("--version", action="version", version=f"spatten-dv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"spatten_dv.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"spatten_dv.commands.{name}":
                continue  # command not part of this build
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"spatten-dv {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"spatten-dv {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
