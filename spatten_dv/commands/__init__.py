"""The `spatten-dv` subcommands, one module each (see spatten_dv/cli.py)."""

from __future__ import annotations

import argparse


def show_usage(parser: argparse.ArgumentParser):
    """`func` for a command group run without a subcommand: print its help, exit code 2."""

    def run(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return run
