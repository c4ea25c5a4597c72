"""Command line: ``sctranslator demo``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Run the ``sctranslator`` command line."""
    parser = argparse.ArgumentParser(prog="sctranslator", description="Translate single-cell RNA into proteins.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="Train on embedded PBMC CITE-seq cells and translate a held-out batch.")
    demo.add_argument("--out", default="sctranslator_demo", help="output folder (default: %(default)s)")
    demo.add_argument("--max-epochs", type=int, default=100, help="maximum training epochs (default: %(default)s)")
    demo.add_argument("--overwrite", action="store_true", help="replace existing output files")
    args = parser.parse_args(argv)
    from sctranslator._demo import run_demo

    try:
        run_demo(args.out, max_epochs=args.max_epochs, overwrite=args.overwrite)
    except FileExistsError as error:
        print(f"sctranslator: {error}", file=sys.stderr)
        return 1
    return 0
