"""``python -m netobs.stack ACTION`` behaves as ``netobs stack ACTION``."""

from __future__ import annotations

import argparse
import sys

from netobs.stack.cli import add_parser


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m netobs.stack")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["stack", *sys.argv[1:]])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
