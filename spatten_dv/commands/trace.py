"""`spatten-dv trace info FILE`: validate a trace file and print its summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from spatten_dv.commands import show_usage


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("trace", help="inspect captured attention traces")
    tsub = parser.add_subparsers(dest="trace_command", metavar="SUBCOMMAND")
    info = tsub.add_parser("info", help="validate a trace file and print its summary")
    info.add_argument("file", type=Path, help="trace file (.safetensors)")
    info.set_defaults(func=run_info)
    parser.set_defaults(func=show_usage(parser))


def run_info(args: argparse.Namespace) -> int:
    from spatten_dv.traces.loader import load_trace, summary

    trace = load_trace(args.file)  # TraceError (a UserError) names the file and field
    print(summary(trace, args.file))
    return 0
